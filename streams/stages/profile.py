"""Resolved events -> profile state and triggers, effectively once.

- Exact dedup by claim (stage "profile"): a record the resolve stage re-produced after a crash
  has a new offset but the same messageId, and is skipped; a replay of the same offset is not.
- ``ProfileStore.apply_batch`` per partition: state updates carry (partition, offset) and the
  script skips what is already applied; triggers are confirmed with their idempotency key and
  put in a Redis outbox in the same atomic script.
- The agent produces the confirmed triggers, waits for Kafka's ack, then ``sent`` removes them
  from the outbox. ``resend_stale`` (the sweep) re-produces outbox entries older than a grace
  period: what a crash left between the script and the ack. A trigger is therefore never lost;
  a crash after the ack and before the removal can repeat one on the topic, with the same
  idempotency key, which the webhook sink (and any consumer) deduplicates.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from connectors.deadletter import dead_letter
from profiles.store import ProfileStore
from profiles.triggers import from_history, history_entry
from schemas.codec import SchemaRegistry
from schemas.exceptions import DecodeError
from streams.claims import Claims
from streams.stages.resolve import RawRecord
from touchstream import metrics

log = logging.getLogger(__name__)


@dataclass
class ProfileOutput:
    triggers: list[dict[str, Any]] = field(default_factory=list)
    deadletters: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    duplicates: int = 0


class ProfileStage:
    def __init__(self, *, client: redis.Redis, store: ProfileStore, registry: SchemaRegistry, prefix: str,
                 resolved_topic: str, dedup_window_s: int) -> None:
        self._redis = client
        self.store = store
        self._outbox = f"{prefix}outbox"
        self._topic = resolved_topic
        self._claims = Claims(client, prefix, "profile", dedup_window_s)
        self._decode = registry.decoder("event")
        self._encode_trigger = registry.encoder("trigger")
        self._encode_deadletter = registry.encoder("deadletter")

    def process(self, batch: Sequence[RawRecord], now_ms: int) -> ProfileOutput:
        out = ProfileOutput()
        decoded: list[tuple[RawRecord, dict]] = []
        for raw in batch:
            try:
                decoded.append((raw, self._decode(raw.value)))
            except DecodeError as exc:
                letter = dead_letter("profile", "avro_decode", str(exc), original=raw.value,
                                     topic=self._topic, partition=raw.partition, offset=raw.offset,
                                     key=raw.key)
                out.deadletters.append((raw.key, self._encode_deadletter(letter)))
        claims = self._claims.claim(
            [(e["source"], e["message_id"], f"{r.partition}:{r.offset}") for r, e in decoded],
        )
        by_partition: dict[int, list[tuple[int, dict]]] = defaultdict(list)
        for (raw, event), keep in zip(decoded, claims, strict=True):
            if keep:
                by_partition[raw.partition].append((raw.offset, event))
            else:
                out.duplicates += 1
        if out.duplicates:
            metrics.EVENTS_DUPLICATE.labels("profile").inc(out.duplicates)
        for partition, events in by_partition.items():
            result = self.store.apply_batch(partition, events, now_ms)
            out.triggers.extend(result.triggers)
            metrics.PROFILE_EVENTS.labels("applied").inc(result.applied)
            metrics.PROFILE_EVENTS.labels("replayed").inc(result.skipped_replayed)
            metrics.PROFILE_EVENTS.labels("late").inc(result.skipped_late)
            metrics.PROFILE_EVENTS.labels("invalid_time").inc(result.skipped_invalid)
            metrics.RULE_ERRORS.inc(result.rule_errors)
            metrics.MARKETING_SUPPRESSED.inc(result.suppressed_marketing)
        return out

    def sweep(self, now_ms: int, partitions: Sequence[int] | None) -> list[dict[str, Any]]:
        """Triggers whose time came without a follow-up event (dwell, inactivity, care)."""
        return self.store.close_expired(now_ms, partitions)

    def encode(self, trigger: dict[str, Any]) -> tuple[bytes, bytes]:
        return trigger["oneid"].encode(), self._encode_trigger(trigger)

    def sent(self, triggers: Sequence[dict[str, Any]]) -> None:
        """Kafka acknowledged these: they leave the outbox."""
        if triggers:
            self._redis.hdel(self._outbox, *(f"{t['oneid']}\t{history_entry(t)}" for t in triggers))
            for trigger in triggers:
                metrics.TRIGGERS.labels(trigger["rule"]).inc()

    def resend_stale(self, now_ms: int, grace_ms: int = 30_000) -> list[dict[str, Any]]:
        """Outbox entries older than ``grace_ms``: fired, but never acknowledged by Kafka."""
        stale = []
        for field_ in self._redis.hkeys(self._outbox):
            oneid, _, entry = field_.decode().partition("\t")
            trigger = from_history(oneid, entry)
            if trigger["fired_at"] < now_ms - grace_ms:
                stale.append(trigger)
        if stale:
            log.warning("re-sending %s trigger(s) left unacknowledged by an earlier crash", len(stale))
        return stale
