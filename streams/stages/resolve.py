"""Raw events -> OneID: decode, drop exact duplicates, resolve the batch in one script run.

Plain code, no Faust: the agent hands it (partition, offset, key, bytes) tuples and sends what
it returns. Every input ends in exactly one place: the resolved topic, the dead-letter topic
(undecodable, or no identifier the rules accept), or a counter with a rejection record
(duplicates; events of deleted profiles, which must not be kept).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import redis

from connectors.deadletter import dead_letter
from identity.graph import IdentityGraph
from schemas.codec import SchemaRegistry
from schemas.exceptions import DecodeError
from streams.claims import Claims
from touchstream import metrics

log = logging.getLogger(__name__)

SUPPRESSED = "suppressed"


class RawRecord(NamedTuple):
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    topic: str = ""


@dataclass
class StageOutput:
    """What a batch produces, as (key, value) pairs per destination, plus counts."""

    resolved: list[tuple[bytes, bytes]] = field(default_factory=list)
    merges: list[tuple[bytes, bytes]] = field(default_factory=list)
    rejections: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    deadletters: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    merged_ids: list[str] = field(default_factory=list)
    duplicates: int = 0
    suppressed: int = 0


class ResolveStage:
    def __init__(self, *, client: redis.Redis, graph: IdentityGraph, registry: SchemaRegistry,
                 prefix: str, raw_topic: str, dedup_window_s: int, event_time_skew_ms: int) -> None:
        self._graph = graph
        self._skew_ms = event_time_skew_ms
        self._registry = registry
        self._raw_topic = raw_topic
        self._claims = Claims(client, prefix, "resolve", dedup_window_s)
        self._decode = registry.decoder("event")
        self._encode_merge = registry.encoder("identity_merge")
        self._encode_rejection = registry.encoder("identity_rejection")
        self._encode_deadletter = registry.encoder("deadletter")

    def _dead(self, out: StageOutput, raw: RawRecord, reason: str, error: str) -> None:
        record = dead_letter("resolve", reason, error, original=raw.value, topic=self._raw_topic,
                             partition=raw.partition, offset=raw.offset, key=raw.key)
        out.deadletters.append((raw.key, self._encode_deadletter(record)))

    def process(self, batch: Sequence[RawRecord]) -> StageOutput:
        out = StageOutput()
        decoded: list[tuple[RawRecord, dict]] = []
        for raw in batch:
            try:
                decoded.append((raw, self._decode(raw.value)))
            except DecodeError as exc:
                self._dead(out, raw, "avro_decode", str(exc))

        claims = self._claims.claim(
            [(e["source"], e["message_id"], f"{r.partition}:{r.offset}") for r, e in decoded],
        )
        fresh = [item for item, keep in zip(decoded, claims, strict=True) if keep]
        out.duplicates = len(decoded) - len(fresh)
        if out.duplicates:
            metrics.EVENTS_DUPLICATE.labels("resolve").inc(out.duplicates)

        resolution = self._graph.resolve_batch([
            {"message_id": e["message_id"], "timestamp": self._decision_time(e),
             "identifiers": e["identifiers"], "partition": r.partition, "offset": r.offset}
            for r, e in fresh
        ])
        suppressed = {rej["message_id"] for rej in resolution.rejections if rej["reason"] == SUPPRESSED}
        for (raw, event), oneid in zip(fresh, resolution.oneids, strict=True):
            if oneid is not None:
                out.resolved.append((oneid.encode(), self._registry.stamp_oneid(raw.value, oneid)))
            elif event["message_id"] in suppressed:
                out.suppressed += 1  # a deleted person's event: not kept anywhere, only counted
            else:
                self._dead(out, raw, "unresolvable", "no identifier the identity rules accept")
        metrics.EVENTS_RESOLVED.inc(len(out.resolved))
        if out.suppressed:
            metrics.EVENTS_SUPPRESSED.inc(out.suppressed)
        for merge in resolution.merges:
            out.merges.append((merge["survivor"].encode(), self._encode_merge(merge)))
            out.merged_ids.append(merge["merged"])
        for rejection in resolution.rejections:
            metrics.IDENTITY_REJECTIONS.labels(rejection["reason"].split(":")[0]).inc()
            key = rejection["oneid"].encode() if rejection["oneid"] else None
            out.rejections.append((key, self._encode_rejection(rejection)))
        metrics.IDENTITY_MERGES.inc(len(resolution.merges))
        return out

    def _decision_time(self, event: dict) -> int:
        """Event time for suppression and ordering: a client's clock ahead of ours counts as
        receipt plus the allowed skew, so a future-dated event cannot outrun an erasure."""
        return min(event["timestamp"], event["received_at"] + self._skew_ms)

    def merges_acknowledged(self, merged_ids: Sequence[str]) -> None:
        self._graph.merges_acknowledged(merged_ids)

    def stale_merges(self, now_s: float, grace_s: float = 30.0
                     ) -> tuple[list[str], list[tuple[bytes, bytes]]]:
        """Merge records a crash kept from Kafka, rebuilt (no identifiers: the graph has them)."""
        stale = self._graph.unacknowledged_merges(grace_s, now_s)
        if stale:
            log.warning("re-sending %s merge record(s) left unacknowledged by an earlier crash", len(stale))
        records = [
            (survivor.encode(), self._encode_merge({
                "survivor": survivor, "merged": merged, "message_id": "", "timestamp": int(now_s * 1000),
                "identifiers": [], "reason": "resent_after_crash"}))
            for merged, survivor in stale
        ]
        return [m for m, _ in stale], records
