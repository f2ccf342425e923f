"""In-memory fakes of what stages need of Redis (``streams/ports.py``), for unit tests.

They keep the contracts the stages rely on, not the real scripts' logic: a claim tells a replay
(same position) from a duplicate (another position); the graph links events that share an
identifier value and reports a merge when one event joins two people; the store skips offsets at
or below its watermark per partition and puts fired triggers in the outbox in the same call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from identity.graph import BatchResolution, PendingMerge
from profiles.engine import BatchResult
from schemas.codec import default_registry
from schemas.testing import event_record
from streams.records import Record


class FakeClaims:
    """``ClaimLedger``: the first position to claim a (source, messageId) owns it."""

    def __init__(self) -> None:
        self.owners: dict[tuple[str, str], str] = {}

    def claim(self, items: Sequence[tuple[str, str, str]]) -> list[bool]:
        decisions = []
        for source, message_id, position in items:
            owner = self.owners.setdefault((source, message_id), position)
            decisions.append(owner == position)
        return decisions


class FakeGraph:
    """``Graph``: identifier value -> OneID; an event naming two people merges them (older wins)."""

    def __init__(self, suppressed: Iterable[str] = ()) -> None:
        self.owner: dict[str, str] = {}
        self.suppressed = set(suppressed)
        self.outbox: dict[str, tuple[str, float]] = {}  # merged -> (survivor, recorded at, seconds)
        self.now_s = 0.0
        self._next = 0

    def resolve_batch(self, events: Sequence[Mapping[str, Any]], now_ms: int | None = None
                      ) -> BatchResolution:
        out = BatchResolution([], [], [], [])
        for event in events:
            values = [i["value"] for i in event["identifiers"]]
            if any(v in self.suppressed for v in values):
                out.oneids.append(None)
                out.rejections.append({"oneid": None, "type": "email", "value_hash": "0" * 64,
                                       "reason": "suppressed", "message_id": event["message_id"],
                                       "timestamp": event["timestamp"]})
                continue
            if not values:
                out.oneids.append(None)
                continue
            people = sorted({self.owner[v] for v in values if v in self.owner})
            if people:
                survivor = people[0]
            else:
                survivor, self._next = f"oid-{self._next}", self._next + 1
            for merged in people[1:]:
                for value, owner in self.owner.items():
                    if owner == merged:
                        self.owner[value] = survivor
                self.outbox[merged] = (survivor, self.now_s)
                out.merges.append({"survivor": survivor, "merged": merged, "message_id": event["message_id"],
                                   "timestamp": event["timestamp"], "identifiers": [], "reason": "shared"})
            for value in values:
                self.owner[value] = survivor
            out.oneids.append(survivor)
        return out

    def merges_acknowledged(self, merged: Iterable[str]) -> None:
        for oneid in merged:
            self.outbox.pop(oneid, None)

    def unacknowledged_merges(self, older_than_s: float, now_s: float) -> list[PendingMerge]:
        return [PendingMerge(merged, survivor) for merged, (survivor, at) in self.outbox.items()
                if at < now_s - older_than_s]


def trigger_of(event: Mapping[str, Any], now_ms: int, rule: str = "demo_requested") -> dict[str, Any]:
    """The trigger record a rule on ``event`` fires (the shape of schemas/trigger.avsc)."""
    return {"rule": rule, "oneid": event["oneid"], "idempotency_key": f"{rule}:{event['message_id']}",
            "event_time": event["timestamp"], "fired_at": now_ms, "message_id": event["message_id"],
            "marketing": False, "values": "{}"}


class FakeOutbox:
    """``Outbox`` of triggers: what the store confirmed and Kafka did not acknowledge yet."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Any]] = {}
        self.scans = 0

    def put(self, triggers: Iterable[dict[str, Any]]) -> None:
        for trigger in triggers:
            self.entries[trigger["idempotency_key"]] = trigger

    def acknowledge(self, entries: Sequence[dict[str, Any]]) -> None:
        for trigger in entries:
            self.entries.pop(trigger["idempotency_key"], None)

    def stale(self, now_ms: int, grace_ms: int) -> list[dict[str, Any]]:
        self.scans += 1
        return [t for t in self.entries.values() if t["fired_at"] < now_ms - grace_ms]


class FakeStore:
    """``ProfileApplier``: applies each offset once per partition; ``fires`` picks trigger events."""

    def __init__(self, outbox: FakeOutbox | None = None,
                 fires: Callable[[Mapping[str, Any]], bool] = lambda event: False) -> None:
        self.outbox = outbox if outbox is not None else FakeOutbox()
        self.fires = fires
        self.watermarks: dict[int, int] = {}
        self.applied: dict[str, list[str]] = defaultdict(list)  # oneid -> message ids
        self.merges: list[tuple[str, str]] = []
        self.due: list[dict[str, Any]] = []

    def apply_batch(self, partition: int, events: Sequence[tuple[int, dict[str, Any]]],
                    now_ms: int) -> BatchResult:
        result = BatchResult()
        for offset, event in events:
            if offset <= self.watermarks.get(partition, -1):
                result.skipped_replayed += 1
                continue
            self.watermarks[partition] = offset
            self.applied[event["oneid"]].append(event["message_id"])
            result.applied += 1
            if self.fires(event):
                result.triggers.append(trigger_of(event, now_ms))
        self.outbox.put(result.triggers)
        return result

    def close_expired(self, now_ms_watermark: int, partitions: Iterable[int] | None = None
                      ) -> list[dict[str, Any]]:
        due, self.due = self.due, []
        self.outbox.put(due)
        return due

    def merge_many(self, pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        for survivor, merged in pairs:
            self.applied[survivor].extend(self.applied.pop(merged, []))
            self.merges.append((survivor, merged))
        return [{"merged": True} for _ in pairs]


def raw_event(message_id: str, *identifiers: str, source: str = "web", timestamp: int = 1_700_000_000_000,
              event: str = "Page Viewed", oneid: str | None = None) -> dict[str, Any]:
    """An Event record (schemas/event.avsc) whose identifiers are ``email`` values."""
    return event_record("track", timestamp, message_id=message_id, source=source, event=event, oneid=oneid,
                        identifiers=[{"type": "email", "value": value} for value in identifiers])


def records(events: Sequence[Mapping[str, Any]], *, topic: str = "raw", partition: int = 0,
            first_offset: int = 0, schema: str = "event") -> list[Record]:
    """Records carrying ``events`` Avro-encoded, at consecutive offsets of one partition."""
    encode = default_registry().encoder(schema)
    return [Record(partition, first_offset + i, None, encode(dict(e)), topic) for i, e in enumerate(events)]


class FakeHeartbeats:
    """``Heartbeats`` in a dict shared by the loops of several fake workers."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}
        self.beats = 0

    def beat(self, instance: str, now_ms: int) -> dict[str, int]:
        self.beats += 1
        self.last[instance] = now_ms
        return dict(self.last)

    def forget(self, instances: Sequence[str]) -> None:
        for instance in instances:
            self.last.pop(instance, None)
