"""The pseudonym test, on the real Redis: no identifier is recoverable from a OneID or a hash
without the secret, and a rotated secret keeps erased people suppressed.

The attacker knows everything but the secret: the code, every OneID and hash the platform hands
out (webhooks, topics, the lake, audits) or keeps (suppression entries, guard sets, the erasure
record), and a candidate list that holds every real identifier (a block of 10,000 phone numbers,
the email, user id and device patterns). They try every unkeyed digest of each candidate, and
HMACs under a guessed secret: nothing matches. Under the real secret, the same search finds every
identifier behind every OneID and hash, so the search is good enough and only the secret stops it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis

from apps import factory
from identity.graph import IdentityGraph
from identity.reference import ReferenceGraph
from identity.rules import load_rules
from tests.conftest import oneid_for
from touchstream.pseudonyms import Pseudonyms
from touchstream.settings import Settings

PHONE_BLOCK = [f"+861391234{n:04d}" for n in range(10_000)]
ALGORITHMS = ("md5", "sha1", "sha224", "sha256", "sha512", "blake2b", "blake2s", "sha3_256")
HEX_RUN = re.compile(r"[0-9a-f]{12,}")


def candidates() -> list[tuple[str, str]]:
    """Every identifier the attacker tries: a superset of the real ones."""
    out = [("phone", p) for p in PHONE_BLOCK]
    for n in range(1_000):
        out += [("email", f"p{n}@qq.com"), ("user_id", f"u{n}"), ("anonymous_id", f"a{n}"),
                ("anonymous_id", f"b{n}"), ("device_id", f"d{n}")]
    return out


def unkeyed_digests(type_: str, value: str) -> Iterator[str]:
    for text in (value, f"{type_}:{value}"):
        data = text.encode()
        for name in ALGORITHMS:
            yield hashlib.new(name, data).hexdigest()
        yield uuid.uuid5(uuid.NAMESPACE_URL, text).hex


def keyed_digests(secret: bytes, type_: str, value: str) -> Iterator[str]:
    """What an attacker holding ``secret`` computes: the pseudonym and the OneID it seeds."""
    mac = hmac.new(secret, f"{type_}:{value}".encode(), hashlib.sha256).hexdigest()
    yield mac
    yield hashlib.sha1(mac.encode()).hexdigest()[:16]  # a OneID's hex


def ev(message_id: str, ts: int, *ids: tuple[str, str]) -> dict:
    identifiers = [{"type": t, "value": v} for t, v in ids]
    return {"message_id": message_id, "timestamp": ts, "identifiers": identifiers}


@pytest.fixture()
def graph_settings(settings: Settings) -> Iterator[Settings]:
    own = replace(settings, redis_prefix=f"{settings.redis_prefix}pseudo:{uuid.uuid4().hex[:8]}:")
    yield own
    client = redis.Redis.from_url(own.redis_url)
    for key in client.scan_iter(match=own.redis_prefix.replace("{", "\\{") + "*", count=1000):
        client.delete(key)


def scenario(graph: IdentityGraph) -> tuple[set[str], list[str], dict[str, tuple[str, str]]]:
    """Resolve people who log in, share phones, re-point a device, get split and erased: the
    OneIDs, the hashes handed out, and which identifier created each OneID."""
    oneids: set[str] = set()
    hashes: list[str] = []
    created: dict[str, tuple[str, str]] = {}

    def run(events: list[dict]) -> None:
        result = graph.resolve_batch(events)
        oneids.update(o for o in result.oneids if o)
        hashes.extend(r["value_hash"] for r in result.rejections)
        hashes.extend(m["value_hash"] for m in result.moves)
        oneids.update(m["survivor"] for m in result.merges)

    for i in range(40):  # logged-in people: the user id creates the OneID
        run([ev(f"u{i}", 1_000 + i, ("user_id", f"u{i}"), ("email", f"p{i}@qq.com"),
                ("phone", PHONE_BLOCK[i]), ("anonymous_id", f"a{i}"))])
        created[graph.lookup("user_id", f"u{i}") or ""] = ("user_id", f"u{i}")
    for i in range(40, 60):  # known only by a phone: the phone creates the OneID
        run([ev(f"b{i}", 2_000 + i, ("phone", PHONE_BLOCK[i]), ("anonymous_id", f"b{i}"))])
        created[graph.lookup("phone", PHONE_BLOCK[i]) or ""] = ("phone", PHONE_BLOCK[i])
    # two user ids never merge: the phone each claims of the other is rejected (its hash recorded)
    run([ev(f"c{i}", 3_000 + i, ("user_id", f"u{i}"), ("phone", PHONE_BLOCK[i + 1])) for i in range(10)])
    # one phone seen with more people than the guard allows; another kept in a guard set
    run([ev(f"g{i}", 4_000 + i, ("user_id", f"u{i}"), ("phone", PHONE_BLOCK[20])) for i in range(21, 25)])
    # a shared device re-pointed by a newer login (a move, hashed)
    run([ev("d1", 5_000, ("user_id", "u30"), ("device_id", "d7"))])
    run([ev("d2", 6_000, ("user_id", "u31"), ("device_id", "d7"))])
    # an operator split: the new OneID is seeded by the split identifier's pseudonym
    split = graph.unmerge(graph.lookup("user_id", "u35") or "", "anonymous_id", "a35", actor="test")
    oneids.add(split.new_oneid)
    created[split.new_oneid] = ("anonymous_id", "a35")
    return oneids, hashes, created


def kept_in_redis(client: redis.Redis, graph: IdentityGraph) -> list[str]:
    """Every key name, field, value and member under the graph, as text (binary as latin-1)."""
    out: list[str] = []

    def text(item: bytes | str) -> str:
        return item.decode("latin-1") if isinstance(item, bytes) else str(item)

    for key in client.scan_iter(match=graph.base.replace("{", "\\{") + "*", count=1000):
        out.append(text(key))
        kind = text(client.type(key))
        if kind == "hash":
            out += [text(x) for pair in client.hgetall(key).items() for x in pair]
        elif kind == "set":
            out += [text(m) for m in client.smembers(key)]
        elif kind == "zset":
            out += [text(m) for m in client.zrange(key, 0, -1)]
        elif kind == "stream":
            out += [text(x) for _, entry in client.xrange(key) for pair in entry.items() for x in pair]
    return out


def test_no_identifier_is_recoverable_from_a_oneid_or_hash_without_the_secret(graph_settings, redis_client):
    graph = factory.identity_graph(graph_settings, redis_client)
    oneids, handed_out, created = scenario(graph)
    erased = [graph.erase(graph.lookup("phone", PHONE_BLOCK[i]) or "", "test").hashes for i in (45, 46, 47)]
    kept = kept_in_redis(redis_client, graph)
    tokens = {o[2:] for o in oneids} | set(handed_out) | {h.partition(":")[2] for e in erased for h in e}
    tokens |= {run for item in kept for run in HEX_RUN.findall(item)}  # suppression entries, guard sets...
    assert len(handed_out) >= 10 and len(oneids) >= 60 and any(len(t) == 64 for t in tokens)

    everyone = candidates()
    unkeyed = {d[:12] for t, v in everyone for d in unkeyed_digests(t, v)}
    assert not {t[:12] for t in tokens} & unkeyed, "a token is an unkeyed digest of an identifier"
    guessed = {d[:12] for t, v in everyone for d in keyed_digests(b"0" * 64, t, v)}
    assert not {t[:12] for t in tokens} & guessed

    # the same search under the real secret finds the identifier behind every OneID and hash
    secret = graph_settings_secret(graph_settings)
    found = {d: (t, v) for t, v in everyone for d in keyed_digests(secret, t, v)}
    assert all(found.get(o[2:]) == created[o] for o in created)
    assert all(h in found for h in handed_out)
    assert {found[o[2:]] for o in oneids if o[2:] in found} >= set(created.values())


def graph_settings_secret(settings: Settings) -> bytes:
    """The stack's secret, read as every process reads it (only the positive control uses it)."""
    if settings.pseudonym_secret:
        return settings.pseudonym_secret.encode()
    with open(settings.pseudonym_secret_file, encoding="utf-8") as handle:
        return handle.read().strip().encode()


def test_nothing_of_an_erased_person_is_left_in_the_graph_in_any_form(graph_settings, redis_client):
    graph = factory.identity_graph(graph_settings, redis_client)
    scenario(graph)
    person = graph.lookup("user_id", "u3") or ""
    identifiers = [(t, v) for t, values in graph.profile_identifiers(person).items() for v in values]
    assert ("phone", PHONE_BLOCK[3]) in identifiers
    graph.erase(person, "test")
    graph.forget_erasure_hashes(person)  # the erasure service does it once every store is done
    kept = "\n".join(kept_in_redis(redis_client, graph))
    for type_, value in identifiers:
        standalone = rf"(?<![\w@.+-]){re.escape(value)}(?![\w@.-])"
        assert not re.search(standalone, kept), f"the erased {type_} is kept"
        for digest in unkeyed_digests(type_, value):
            assert digest[:8] not in kept, f"an unkeyed digest of the erased {type_} is still kept"


def test_a_rotated_secret_keeps_erased_people_suppressed_until_the_previous_one_is_dropped(
        graph_settings, redis_client):
    old, new = "old-" + "1" * 40, "new-" + "2" * 40
    rules, prefix = load_rules(), graph_settings.redis_prefix
    before = IdentityGraph(redis_client, prefix, rules, pseudonyms=Pseudonyms(old))
    reference = ReferenceGraph(rules, pseudonyms=Pseudonyms(old))
    now = int(time.time() * 1000)
    first = [ev("m1", 1_000, ("phone", PHONE_BLOCK[1]), ("email", "p1@qq.com"))]
    [ann] = before.resolve_batch(first, now_ms=now).oneids
    assert [ann] == reference.resolve_batch(first, now_ms=now).oneids
    assert ann == oneid_for("email", "p1@qq.com", Pseudonyms(old))  # the email outranks the phone
    before.erase(ann, "test", suppress_ms=3_600_000)
    reference.delete_profile(ann, suppress_ms=3_600_000)

    # during the rotation: the entry written under the old secret still refuses the phone
    rotating = Pseudonyms(new, previous=old)
    during = IdentityGraph(redis_client, prefix, rules, pseudonyms=rotating)
    reference.state.pseudonyms = rotating
    again = [ev("m2", 2_000, ("phone", PHONE_BLOCK[1])), ev("m3", 2_000, ("user_id", "u9"))]
    got = during.resolve_batch(again, now_ms=now + 1_000)
    assert got == reference.resolve_batch(again, now_ms=now + 1_000)
    assert got.oneids[0] is None and [r["reason"] for r in got.rejections] == ["suppressed"]
    assert got.rejections[0]["value_hash"] == Pseudonyms(new).of("phone", PHONE_BLOCK[1])  # new hashes
    assert got.oneids[1] == oneid_for("user_id", "u9", Pseudonyms(new))  # new OneIDs
    assert during.lookup("user_id", "u9") == got.oneids[1]

    # the previous secret dropped before the window ended: its entries no longer match
    after = IdentityGraph(redis_client, prefix, rules, pseudonyms=Pseudonyms(new))
    [returned] = after.resolve_batch([ev("m4", 3_000, ("phone", PHONE_BLOCK[1]))], now_ms=now + 2_000).oneids
    assert returned is not None and returned != ann
