"""Outboxes: effects a Redis script confirmed whose Kafka record is not acknowledged yet.

Two scripts keep one in the same atomic run as the effect, so a crash between the script and
Kafka's ack delays a record instead of losing it: ``graph.lua`` (merges: field = merged OneID,
value = ``survivor|seconds``) and ``profiles/state.lua`` (triggers: field =
``oneid<TAB>history entry``, which holds ``fired_at``). Both are driven the same way: the stage
``acknowledge``s entries after Kafka's ack, and a tick re-sends what is ``stale`` (older than a
grace period).

Limit: ``stale`` reads the whole hash (HKEYS/HGETALL), on every worker, every tick. It stays
small (entries live milliseconds unless a worker crashed), but a partition or time index would
need the Lua scripts to write it; see ``docs`` in the streams issue (scripts owned elsewhere).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, TypeVar

import redis

from profiles.triggers import from_history, history_entry
from streams.ports import MergeLog

log = logging.getLogger(__name__)

E = TypeVar("E")


class Outbox(Protocol[E]):
    """Entries confirmed by a script and waiting for Kafka's ack."""

    def acknowledge(self, entries: Sequence[E]) -> None:
        """Kafka acknowledged these: forget them."""
        ...

    def stale(self, now_ms: int, grace_ms: int) -> list[E]:
        """Entries older than ``grace_ms``: confirmed, but never acknowledged (a crash)."""
        ...


class MergeOutbox:
    """The identity graph's merge outbox; entries are (merged, survivor) OneIDs."""

    def __init__(self, graph: MergeLog) -> None:
        self._graph = graph

    def acknowledge(self, entries: Sequence[tuple[str, str]]) -> None:
        if entries:
            self._graph.merges_acknowledged([merged for merged, _ in entries])

    def stale(self, now_ms: int, grace_ms: int) -> list[tuple[str, str]]:
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
            oneid, _, entry = field_.decode().partition("\t")
            trigger = from_history(oneid, entry)
            if trigger["fired_at"] < now_ms - grace_ms:
                found.append(trigger)
        if found:
            log.warning("re-sending %s trigger(s) left unacknowledged by an earlier crash", len(found))
        return found
