"""Dead letters of erased people: found, marked, never replayed or shown again.

The dead-letter topic is Kafka: one record cannot be deleted alone (``DeleteRecords`` truncates a
whole partition below an offset), so an erasure does what Kafka allows:

- it reads the topic once and marks the position of every letter that carries the person (an
  erased OneID in the record or its key, or an identifier whose ``type:pseudonym`` hash is one of
  theirs) in ``<prefix>deadletter:erased``;
- ``deadletter replay`` and ``deadletter list`` skip marked positions and any letter naming a
  tombstoned OneID or a suppressed identifier hash (a letter written after the erasure: an
  in-flight record that failed later), so nothing brings the person back;
- the bytes themselves leave Kafka with the topic's retention (8 weeks, ``streams/topics.py``),
  which the erasure SLA states.

A letter whose original cannot be decoded is matched by its bytes: any erased OneID in them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import redis

from schemas.codec import EVENT, IDENTITY_MERGE, IDENTITY_REJECTION, SEGMENT_CHANGE, TRIGGER, default_registry
from schemas.exceptions import DecodeError
from streams.deadletters import read_dead_letters
from touchstream.pseudonyms import Pseudonyms

#: Which record a source topic carries, by the topic's suffix (streams/topics.py).
_SCHEMAS = (("events.raw", EVENT), ("events.resolved", EVENT), ("identity.merges", IDENTITY_MERGE),
            ("identity.rejections", IDENTITY_REJECTION), ("triggers", TRIGGER), ("segments", SEGMENT_CHANGE))


def erased_key(prefix: str) -> str:
    """The Redis set of dead-letter positions ("partition:offset") that carry an erased person."""
    return f"{prefix}deadletter:erased"


@dataclass(frozen=True)
class Person:
    """Who to look for (one erased person, or everyone erased): OneIDs and ``type:pseudonym``
    identifier hashes (touchstream/pseudonyms.py). The lake's erasure takes the same value.
    ``pseudonyms`` hashes a record's raw identifiers to compare them (none: only records that
    carry hashes or OneIDs are matched)."""

    oneids: frozenset[str]
    hashes: frozenset[str] = frozenset()
    pseudonyms: Pseudonyms | None = field(default=None, compare=False)

    def __bool__(self) -> bool:
        return bool(self.oneids or self.hashes)


def _decode(letter: dict[str, Any]) -> dict[str, Any] | None:
    topic = letter.get("source_topic") or ""
    for suffix, schema in _SCHEMAS:
        if topic.endswith("." + suffix):
            try:
                return default_registry().decoder(schema)(letter["original"])
            except DecodeError:
                return None
    return None


def carries(letter: dict[str, Any], person: Person) -> bool:
    """Does the dead letter (a decoded DeadLetter record) hold anything of ``person``?"""
    key = letter.get("key") or b""
    if any(oneid.encode() == key for oneid in person.oneids):
        return True
    record = _decode(letter)
    if record is None:
        original = letter.get("original") or b""
        return any(oneid.encode() in original for oneid in person.oneids)
    named = {record.get(name) for name in ("oneid", "survivor", "merged")}
    if named & person.oneids:
        return True
    if record.get("value_hash") and f"{record.get('type')}:{record['value_hash']}" in person.hashes:
        return True
    if person.pseudonyms is None or not person.hashes:
        return False
    every = person.pseudonyms.every
    identifiers = [*record.get("identifiers", ()), *record.get("invalid_identifiers", ())]
    return any(f"{i['type']}:{h}" in person.hashes for i in identifiers for h in every(i["type"], i["value"]))


def mark_erased(client: redis.Redis, prefix: str, broker: str, topic: str, person: Person) -> int:
    """Read the dead-letter topic and mark every letter carrying ``person``; how many (already
    marked ones included, so a resumed erasure reports the same count)."""
    if not person:
        return 0
    positions = [f"{stored.partition}:{stored.offset}" for stored in read_dead_letters(broker, topic)
                 if carries(stored.record, person)]
    if positions:
        client.sadd(erased_key(prefix), *positions)
    return len(positions)


def skip_erased(client: redis.Redis, prefix: str, person: Callable[[], Person]
                ) -> Callable[[int, int, dict[str, Any]], bool]:
    """A predicate for readers: True for a letter (partition, offset, record) to leave out because
    it was marked by an erasure or names someone erased since (``person``: everyone erased and
    still suppressed, read once per call of this function)."""
    marked = {m.decode() if isinstance(m, bytes) else str(m) for m in client.smembers(erased_key(prefix))}
    everyone = person()

    def skip(partition: int, offset: int, record: dict[str, Any]) -> bool:
        return f"{partition}:{offset}" in marked or (bool(everyone) and carries(record, everyone))

    return skip


def person_of(oneids: Iterable[str], hashes: Iterable[str], pseudonyms: Pseudonyms | None = None) -> Person:
    return Person(frozenset(oneids), frozenset(hashes), pseudonyms)
