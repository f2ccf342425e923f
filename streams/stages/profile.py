"""Resolved events -> profile state and triggers, effectively once.

- Exact dedup by claim (stage "profile"): a record the resolve stage re-produced after a crash
  has a new offset but the same messageId, and is skipped; a replay of the same offset is not.
- ``ProfileStore.apply_batch`` per partition: state updates carry (partition, offset) and the
  script skips what is already applied; triggers are confirmed with their idempotency key and
  put in a Redis outbox in the same atomic script.
- The loop produces the confirmed triggers, waits for Kafka's ack, then ``sent`` removes them
  from the outbox. ``resend_stale`` (the sweep) re-produces outbox entries older than a grace
  period: what a crash left between the script and the ack. A trigger is therefore never lost;
  a crash after the ack and before the removal can repeat one on the topic, with the same
  idempotency key, which the webhook sink (and any consumer) deduplicates.
- Segment entries and exits (``profiles/segments/``) follow the same path through their own
  outbox: recorded by the script with the state change, produced to the segments topic, cleared
  after the ack; ``resend_stale_segments`` runs on every sweep (deletions leave records there).
- Events stamped with a OneID erased since (tombstoned) change nothing: the store refuses them
  and the stage puts a rejection (reason ``erased``) on the rejections topic.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from profiles.engine import BatchResult
from schemas.codec import SchemaRegistry
from streams.claims import Claims
from streams.deadletters import DeadLetter
from streams.intake import Decoder
from streams.outbox import Outbox, SegmentOutbox, TriggerOutbox
from streams.ports import ClaimLedger, ProfileApplier
from streams.records import Record

#: Rejection reason of an event or merge refused because its OneID is erased (tombstoned).
ERASED = "erased"


@dataclass
class ProfileOutput:
    """Confirmed triggers to produce, dead letters, rejections (events of erased people, refused
    by the store), and what the store did (for the observer)."""

    triggers: list[dict[str, Any]] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)
    rejections: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    duplicates: int = 0
    applied: list[BatchResult] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)  # segment entries/exits to produce
    erased: int = 0


def erased_rejection(encode: Callable[[dict[str, Any]], bytes], oneid: str | None, message_id: str | None,
                     timestamp: int | None) -> tuple[bytes | None, bytes]:
    """The rejection record of something refused because its person was erased (reason
    ``erased``): the OneID, no identifier (``value_hash`` empty)."""
    record = {"oneid": oneid, "type": "oneid", "value_hash": "", "reason": ERASED,
              "message_id": message_id or "", "timestamp": int(timestamp or 0)}
    return (oneid.encode() if oneid else None), encode(record)


class ProfileStage:
    """``claims`` and ``outbox`` default to the Redis ones under ``prefix`` (``client``)."""

    def __init__(self, *, store: ProfileApplier, registry: SchemaRegistry, resolved_topic: str,
                 claims: ClaimLedger | None = None, outbox: Outbox[dict[str, Any]] | None = None,
                 segment_outbox: Outbox[dict[str, Any]] | None = None,
                 client: redis.Redis | None = None, prefix: str = "", dedup_window_s: int = 0) -> None:
        if claims is None or outbox is None or segment_outbox is None:
            if client is None:
                raise TypeError("ProfileStage needs claims and outboxes, or a Redis client")
            claims = claims or Claims(client, prefix, "profile", dedup_window_s)
            outbox = outbox or TriggerOutbox(client, prefix)
            segment_outbox = segment_outbox or SegmentOutbox(client, prefix)
        self.store = store
        self._outbox = outbox
        self._segment_outbox = segment_outbox
        self._intake = Decoder("profile", resolved_topic, registry.decoder("event"), claims)
        self._encode_trigger = registry.encoder("trigger")
        self._encode_segment = registry.encoder("segment_change")
        self._encode_rejection = registry.encoder("identity_rejection")

    def process(self, batch: Sequence[Record], now_ms: int) -> ProfileOutput:
        intake = self._intake(batch)
        out = ProfileOutput(deadletters=intake.deadletters, duplicates=intake.duplicates)
        by_partition: dict[int, list[tuple[int, dict[str, Any]]]] = defaultdict(list)
        for raw, event in intake.fresh:
            by_partition[raw.partition].append((raw.offset, event))
        for partition, events in by_partition.items():
            result = self.store.apply_batch(partition, events, now_ms)
            out.triggers.extend(result.triggers)
            out.segments.extend(result.segments)
            out.applied.append(result)
            for refused in result.erased:
                out.rejections.append(erased_rejection(self._encode_rejection, refused["oneid"],
                                                       refused["message_id"], refused["timestamp"]))
            out.erased += len(result.erased)
        return out

    def sweep(self, now_ms: int, partitions: Sequence[int] | None) -> ProfileOutput:
        """What time alone did: triggers whose time came without a follow-up event (dwell,
        inactivity, care), segments entered or left by time (the segment timers), segment
        members whose re-check came; then one step giving profiles their segment timer."""
        result = self.store.close_expired_result(now_ms, partitions)
        out = ProfileOutput(triggers=result.triggers,
                            segments=result.segments + self.store.sweep_segments(now_ms))
        self.store.schedule_segments(now_ms)
        return out

    def encode(self, trigger: dict[str, Any]) -> tuple[bytes, bytes]:
        return trigger["oneid"].encode(), self._encode_trigger(trigger)

    def encode_segment(self, change: dict[str, Any]) -> tuple[bytes, bytes]:
        return change["oneid"].encode(), self._encode_segment(change)

    def sent(self, triggers: Sequence[dict[str, Any]], segments: Sequence[dict[str, Any]] = ()) -> None:
        """Kafka acknowledged these: they leave their outboxes."""
        self._outbox.acknowledge(triggers)
        self._segment_outbox.acknowledge(segments)

    def resend_stale(self, now_ms: int, grace_ms: int = 30_000) -> list[dict[str, Any]]:
        """Outbox entries older than ``grace_ms``: fired, but never acknowledged by Kafka."""
        return self._outbox.stale(now_ms, grace_ms)

    def resend_stale_segments(self, now_ms: int, grace_ms: int = 30_000) -> list[dict[str, Any]]:
        """Segment changes nobody is sending: a deletion's, or older than ``grace_ms`` (a crash)."""
        return self._segment_outbox.stale(now_ms, grace_ms)
