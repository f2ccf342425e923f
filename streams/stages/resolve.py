"""Raw events -> OneID: decode, drop exact duplicates, resolve the batch in one script run.

Plain code, no engine: a loop hands it records and sends what it returns. Every input ends in
exactly one place: the resolved topic, the dead-letter topic (undecodable, or no identifier the
rules accept), or a counter with a rejection record (duplicates; events of deleted profiles,
which must not be kept). Counts travel in the output; ``streams/observer.py`` turns them into
metrics.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from identity.graph import PendingMerge
from schemas.codec import SchemaRegistry
from streams.claims import Claims
from streams.deadletters import DeadLetter
from streams.intake import Decoder
from streams.outbox import MergeOutbox
from streams.ports import ClaimLedger, Graph
from streams.records import Record

SUPPRESSED = "suppressed"

#: The record every loop takes; the name the benchmarks import.
RawRecord = Record


@dataclass
class ResolveOutput:
    """What a batch produces, as (key, value) pairs per destination, plus counts."""

    resolved: list[tuple[bytes, bytes]] = field(default_factory=list)
    merges: list[tuple[bytes, bytes]] = field(default_factory=list)
    rejections: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)
    merged_ids: list[str] = field(default_factory=list)
    duplicates: int = 0
    suppressed: int = 0
    rejection_reasons: Counter[str] = field(default_factory=Counter)


StageOutput = ResolveOutput


class ResolveStage:
    """``claims`` defaults to the Redis claims of stage "resolve" (``client``, ``prefix``)."""

    def __init__(self, *, graph: Graph, registry: SchemaRegistry, raw_topic: str, event_time_skew_ms: int,
                 claims: ClaimLedger | None = None, client: redis.Redis | None = None, prefix: str = "",
                 dedup_window_s: int = 0) -> None:
        if claims is None:
            if client is None:
                raise TypeError("ResolveStage needs claims or a Redis client")
            claims = Claims(client, prefix, "resolve", dedup_window_s)
        self._graph = graph
        self._outbox = MergeOutbox(graph)
        self._skew_ms = event_time_skew_ms
        self._registry = registry
        self._intake = Decoder("resolve", raw_topic, registry.decoder("event"), claims)
        self._encode_merge = registry.encoder("identity_merge")
        self._encode_rejection = registry.encoder("identity_rejection")

    def process(self, batch: Sequence[Record]) -> ResolveOutput:
        intake = self._intake(batch)
        out = ResolveOutput(deadletters=intake.deadletters, duplicates=intake.duplicates)
        fresh = intake.fresh
        resolution = self._graph.resolve_batch([
            {"message_id": e["message_id"], "timestamp": self._decision_time(e),
             "identifiers": e["identifiers"], "partition": r.partition, "offset": r.offset,
             "trusted": e["trusted"], "received_at": e["received_at"]}
            for r, e in fresh
        ])
        suppressed = {rej["message_id"] for rej in resolution.rejections if rej["reason"] == SUPPRESSED}
        stamp = self._registry.stamp_oneid
        for (raw, event), oneid in zip(fresh, resolution.oneids, strict=True):
            if oneid is not None:
                out.resolved.append((oneid.encode(), stamp(raw.value, oneid)))
            elif event["message_id"] in suppressed:
                out.suppressed += 1  # a deleted person's event: not kept anywhere, only counted
            else:
                out.deadletters.append(self._intake.dead(raw, "unresolvable",
                                                         "no identifier the identity rules accept"))
        for merge in resolution.merges:
            out.merges.append((merge["survivor"].encode(), self._encode_merge(merge)))
            out.merged_ids.append(merge["merged"])
        for rejection in resolution.rejections:
            out.rejection_reasons[rejection["reason"].split(":")[0]] += 1
            key = rejection["oneid"].encode() if rejection["oneid"] else None
            out.rejections.append((key, self._encode_rejection(rejection)))
        return out

    def _decision_time(self, event: dict[str, Any]) -> int:
        """Event time for ordering: a client's clock ahead of ours counts as receipt plus the
        allowed skew. (Suppression of an erased person's identifiers is judged by ``received_at``
        alone, our clock.)"""
        return min(event["timestamp"], event["received_at"] + self._skew_ms)

    def merges_acknowledged(self, merged_ids: Sequence[str]) -> None:
        """Kafka acknowledged the merge records of these merged OneIDs: they leave the outbox."""
        self._outbox.acknowledge([PendingMerge(merged, "") for merged in merged_ids])

    def stale_merges(self, now_s: float, grace_s: float = 30.0
                     ) -> tuple[list[str], list[tuple[bytes, bytes]]]:
        """Merge (and unmerge) records a crash kept from Kafka, rebuilt from the outbox (a merge's
        without identifiers: the graph has them; an unmerge's with the identifiers it moved)."""
        stale = self._outbox.stale(int(now_s * 1000), int(grace_s * 1000))
        records = [(entry.survivor.encode(), self._encode_merge(entry.record(int(now_s * 1000),
                                                                             "resent_after_crash")))
                   for entry in stale]
        return [entry.merged for entry in stale], records
