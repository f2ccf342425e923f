"""Outboxes: effects a Redis script confirmed whose Kafka record is not acknowledged yet.

Scripts keep one in the same atomic run as the effect, so a crash between the script and
Kafka's ack delays a record instead of losing it: ``graph.lua`` (merges: field = merged OneID,
value = ``survivor|seconds``) and the profile script (triggers: field =
``oneid<TAB>history entry``, which holds ``fired_at``; segment changes: field = idempotency key,
value = the record line). All are driven the same way: the stage ``acknowledge``s entries after
Kafka's ack, and a tick re-sends what is ``stale`` (older than a grace period).

``stale`` reads the whole hash (HKEYS/HGETALL): an index by partition or time would have to be
written by the Lua scripts (owned elsewhere), so instead :class:`ScanPolicy` decides *when* a
loop reads it. An entry only goes stale if the run that wrote it never reached its
acknowledgement: the loop failed after the script (it knows), or its process died (its
heartbeat stops). So a loop scans at start, after its own failed attempt, and after a peer's
heartbeat went quiet for the grace period; otherwise a tick costs one tiny heartbeat round trip,
not a read of the whole outbox on every worker every second.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import redis

from identity.graph import PendingMerge
from profiles import layout
from profiles.segments.records import parse_line
from profiles.triggers import from_history, history_entry
from streams.ports import MergeLog

log = logging.getLogger(__name__)

E = TypeVar("E")

#: An entry unacknowledged this long was left by a crash or a failed attempt (a batch takes ms).
GRACE_MS = 30_000


class Outbox(Protocol[E]):
    """Entries confirmed by a script and waiting for Kafka's ack."""

    def acknowledge(self, entries: Sequence[E]) -> None:
        """Kafka acknowledged these: forget them."""
        ...

    def stale(self, now_ms: int, grace_ms: int) -> list[E]:
        """Entries older than ``grace_ms``: confirmed, but never acknowledged (a crash)."""
        ...


class MergeOutbox:
    """The identity graph's merge outbox; entries are merges and operators' unmerges."""

    def __init__(self, graph: MergeLog) -> None:
        self._graph = graph

    def acknowledge(self, entries: Sequence[PendingMerge]) -> None:
        if entries:
            self._graph.merges_acknowledged([entry.merged for entry in entries])

    def stale(self, now_ms: int, grace_ms: int) -> list[PendingMerge]:
        found = self._graph.unacknowledged_merges(grace_ms / 1000, now_ms / 1000)
        if found:
            log.warning("re-sending %s merge record(s) left unacknowledged by an earlier crash", len(found))
        return found


class TriggerOutbox:
    """The profile store's trigger outbox (``<prefix>outbox``); entries are trigger records."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._key = f"{prefix}outbox"

    def acknowledge(self, entries: Sequence[dict[str, Any]]) -> None:
        if entries:
            self._redis.hdel(self._key, *(f"{t['oneid']}\t{history_entry(t)}" for t in entries))

    def stale(self, now_ms: int, grace_ms: int) -> list[dict[str, Any]]:
        found = []
        for field_ in self._redis.hkeys(self._key):
            text = field_.decode() if isinstance(field_, bytes) else field_
            oneid, _, entry = text.partition("\t")
            trigger = from_history(oneid, entry)
            if trigger["fired_at"] < now_ms - grace_ms:
                found.append(trigger)
        if found:
            log.warning("re-sending %s trigger(s) left unacknowledged by an earlier crash", len(found))
        return found


class SegmentOutbox:
    """The profile script's segments outbox (``<prefix>segments:outbox``); entries are
    SegmentChange records.

    Read on every sweep, not on a :class:`ScanPolicy`, because some of its entries have no
    producer waiting for them: a deletion (the API, the CLI, the idle-profile collector) makes
    the person leave their segments in the delete script, and the next sweep sends those
    ``orphan`` lines at once. It stays cheap: ``HLEN`` first, and the hash holds only what is in
    flight (milliseconds) or left behind. Other entries are re-sent after the grace. One worker
    re-sends at a time (a lock of ``LOCK_MS``), so two sweeps do not both put a record on the
    topic; a re-send can still repeat one acknowledged just before (same idempotency key).
    """

    LOCK_MS = 5000

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._redis = client
        self._key = f"{prefix}{layout.SEGMENT_OUTBOX_KEY}"
        self._lock = f"{self._key}:lock"

    def acknowledge(self, entries: Sequence[dict[str, Any]]) -> None:
        if entries:
            self._redis.hdel(self._key, *(r["idempotency_key"] for r in entries))

    def stale(self, now_ms: int, grace_ms: int) -> list[dict[str, Any]]:
        if not self._redis.hlen(self._key) or not self._redis.set(self._lock, "1", nx=True, px=self.LOCK_MS):
            return []
        found = []
        for line in self._redis.hvals(self._key):
            record, writer = parse_line(line)
            if writer == layout.WRITER_ORPHAN or record["changed_at"] < now_ms - grace_ms:
                found.append(record)
        if found:
            log.info("sending %s segment change(s) left in the outbox (deletions, or an earlier crash)",
                     len(found))
        return found

    def left_by(self, writer: str) -> list[dict[str, Any]]:
        """Every entry one kind of writer left (``layout.WRITER_*``), whatever its age."""
        found = []
        for line in self._redis.hvals(self._key):
            record, written_by = parse_line(line)
            if written_by == writer:
                found.append(record)
        return found


class Heartbeats(Protocol):
    """Last-seen times of a loop's instances (every worker's copy of one loop)."""

    def beat(self, instance: str, now_ms: int) -> dict[str, int]:
        """Record ``instance`` alive at ``now_ms``; every instance's last beat."""
        ...

    def forget(self, instances: Sequence[str]) -> None: ...


class RedisHeartbeats:
    """One small hash per loop (``<prefix>outbox:alive:<loop>``): instance -> last beat, ms."""

    def __init__(self, client: redis.Redis, prefix: str, loop: str) -> None:
        self._redis = client
        self._key = f"{prefix}outbox:alive:{loop}"

    def beat(self, instance: str, now_ms: int) -> dict[str, int]:
        with self._redis.pipeline(transaction=False) as pipe:
            pipe.hset(self._key, instance, now_ms)
            pipe.hgetall(self._key)
            _, seen = pipe.execute()
        return {k.decode(): int(v) for k, v in seen.items()}

    def forget(self, instances: Sequence[str]) -> None:
        if instances:
            self._redis.hdel(self._key, *instances)


class ScanPolicy:
    """When a loop must read its outbox for stale entries (see the module docstring).

    The loop calls ``alive`` before each batch (a beat at most every ``beat_every_ms``, so a
    script never runs long after its process's last beat), ``failed`` when an attempt that may
    have run a script did not finish, ``due`` on every tick and ``scanned`` after re-sending
    what the scan found. A peer quiet for ``grace_ms`` is dead: its entries go stale from then
    on, so it is scanned for on every tick until it has been quiet for twice the grace.
    """

    def __init__(self, heartbeats: Heartbeats, grace_ms: int, instance: str | None = None, *,
                 beat_every_ms: int = 1000) -> None:
        self._heartbeats = heartbeats
        self._grace_ms = grace_ms
        self._beat_every_ms = beat_every_ms
        self.instance = instance or uuid.uuid4().hex
        self._at_start = True
        self._first_failure: int | None = None  # oldest failure no scan has covered yet
        self._last_failure: int | None = None
        self._dead: dict[str, int] = {}
        self._checked_at = 0
        self._beat_at: int | None = None

    def alive(self, now_ms: int) -> None:
        if self._beat_at is None or now_ms - self._beat_at >= self._beat_every_ms:
            self._heartbeats.beat(self.instance, now_ms)
            self._beat_at = now_ms

    def failed(self, now_ms: int) -> None:
        if self._first_failure is None:
            self._first_failure = now_ms
        self._last_failure = now_ms

    def due(self, now_ms: int) -> bool:
        """True when a scan can find something: at start, ``grace_ms`` after a failure, or a peer died."""
        seen = self._heartbeats.beat(self.instance, now_ms)
        self._beat_at = self._checked_at = now_ms
        self._dead = {i: at for i, at in seen.items() if i != self.instance and at < now_ms - self._grace_ms}
        failed = self._first_failure is not None and self._first_failure <= now_ms - self._grace_ms
        return self._at_start or failed or bool(self._dead)

    def scanned(self) -> None:
        """The entries stale at the last ``due`` were re-sent; a failure since may still leave some."""
        self._at_start = False
        recent = self._last_failure is not None and self._last_failure > self._checked_at - self._grace_ms
        self._first_failure = self._last_failure if recent else None
        self._heartbeats.forget([i for i, at in self._dead.items()
                                 if at < self._checked_at - 2 * self._grace_ms])
        self._dead = {}
