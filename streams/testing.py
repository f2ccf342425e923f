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
    """``Outbox`` of triggers (or segment changes: ``time_field="changed_at"``): what the store
    confirmed and Kafka did not acknowledge yet."""

    def __init__(self, time_field: str = "fired_at") -> None:
        self.entries: dict[str, dict[str, Any]] = {}
        self.scans = 0
        self.time_field = time_field

    def put(self, triggers: Iterable[dict[str, Any]]) -> None:
        for trigger in triggers:
            self.entries[trigger["idempotency_key"]] = trigger

    def acknowledge(self, entries: Sequence[dict[str, Any]]) -> None:
        for trigger in entries:
            self.entries.pop(trigger["idempotency_key"], None)

    def stale(self, now_ms: int, grace_ms: int) -> list[dict[str, Any]]:
        self.scans += 1
        return [t for t in self.entries.values() if t[self.time_field] < now_ms - grace_ms]


def segment_change(oneid: str, segment: str = "hot_leads", version: int = 1, *, entered: bool = True,
                   reason: str = "event", changed_at: int = 1_700_000_000_000) -> dict[str, Any]:
    """A segment change record (the shape of schemas/segment_change.avsc)."""
    return {"type": "segment_entered" if entered else "segment_exited", "segment": segment, "oneid": oneid,
            "idempotency_key": f"{segment}:{oneid}:{version}", "version": version, "reason": reason,
            "as_of": changed_at, "changed_at": changed_at, "message_id": None, "survivor": None,
            "facts": "{}"}


class FakeStore:
    """``ProfileApplier``: applies each offset once per partition; ``fires`` picks trigger events;
    ``enters`` picks the events that put their person in segment ``hot_leads`` (once each);
    a merged person leaves it and the survivor takes the place. Events and merges naming a OneID
    in ``erased`` are refused, as the script refuses tombstones."""

    def __init__(self, outbox: FakeOutbox | None = None,
                 fires: Callable[[Mapping[str, Any]], bool] = lambda event: False,
                 segment_outbox: FakeOutbox | None = None,
                 enters: Callable[[Mapping[str, Any]], bool] = lambda event: False) -> None:
        self.outbox = outbox if outbox is not None else FakeOutbox()
        self.segment_outbox = segment_outbox if segment_outbox is not None else FakeOutbox("changed_at")
        self.fires = fires
        self.enters = enters
        self.watermarks: dict[int, int] = {}
        self.applied: dict[str, list[str]] = defaultdict(list)  # oneid -> message ids
        self.merges: list[tuple[str, str]] = []
        self.due: list[dict[str, Any]] = []
        self.members: set[str] = set()
        self.inherits: set[str] = set()  # survivors of a member, in once refresh_segments evaluates them
        self.version = 0
        self.segments_due: list[dict[str, Any]] = []
        self.erased: set[str] = set()

    def _change(self, oneid: str, entered: bool, reason: str, now_ms: int) -> dict[str, Any]:
        self.version += 1
        (self.members.add if entered else self.members.discard)(oneid)
        change = segment_change(oneid, version=self.version, entered=entered, reason=reason,
                                changed_at=now_ms)
        self.segment_outbox.put([change])
        return change

    def apply_batch(self, partition: int, events: Sequence[tuple[int, dict[str, Any]]],
                    now_ms: int) -> BatchResult:
        result = BatchResult()
        for offset, event in events:
            if offset <= self.watermarks.get(partition, -1):
                result.skipped_replayed += 1
                continue
            self.watermarks[partition] = offset
            if event["oneid"] in self.erased:
                result.erased.append({k: event[k] for k in ("oneid", "message_id", "timestamp")})
                continue
            self.applied[event["oneid"]].append(event["message_id"])
            result.applied += 1
            if self.fires(event):
                result.triggers.append(trigger_of(event, now_ms))
            if self.enters(event) and event["oneid"] not in self.members:
                result.segments.append(self._change(event["oneid"], True, "event", now_ms))
        self.outbox.put(result.triggers)
        return result

    def close_expired(self, now_ms_watermark: int, partitions: Iterable[int] | None = None
                      ) -> list[dict[str, Any]]:
        return self.close_expired_result(now_ms_watermark, partitions).triggers

    def close_expired_result(self, now_ms_watermark: int, partitions: Iterable[int] | None = None
                             ) -> BatchResult:
        due, self.due = self.due, []
        self.outbox.put(due)
        return BatchResult(triggers=due)

    def sweep_segments(self, now_ms: int, limit: int = 500) -> list[dict[str, Any]]:
        due, self.segments_due = self.segments_due, []
        self.segment_outbox.put(due)
        return due

    def schedule_segments(self, now_ms: int) -> int:
        return 0

    def merge_many(self, pairs: Sequence[tuple[str, str]], now_ms: int = 0) -> list[dict[str, Any]]:
        outcomes: list[dict[str, Any]] = []
        for survivor, merged in pairs:
            if {survivor, merged} & self.erased:
                outcomes.append({"survivor": survivor, "merged": merged, "refused": True})
                continue
            self.applied[survivor].extend(self.applied.pop(merged, []))
            self.merges.append((survivor, merged))
            left = [self._change(merged, False, "merged", now_ms)] if merged in self.members else []
            outcomes.append({"merged": True, "segments": left, "refused": False})
            if left:
                self.inherits.add(survivor)
        return outcomes

    def refresh_segments(self, oneids: Iterable[str], now_ms: int, reason: str) -> list[dict[str, Any]]:
        found = []
        for oneid in oneids:
            if oneid in self.inherits:
                self.inherits.discard(oneid)
                if oneid not in self.members:
                    found.append(self._change(oneid, True, reason, now_ms))
        return found


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
