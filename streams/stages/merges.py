"""Identity merges -> the merged person's profile state folded into the survivor's.

Each merge is its own atomic script run and idempotent, so a batch that fails part-way is run
again whole; an undecodable merge record is dead-lettered so one bad record cannot stall the loop.
A merged OneID leaves its segments in the merge's own run (``reason: merged``); the survivors'
stream segments are evaluated after the batch (``reason: merge``). Those records wait in the
segments outbox until ``sent`` (Kafka acknowledged them).
A merge naming an erased OneID (a record still in flight when the person was erased) is refused
by the store and reported as a rejection (reason ``erased``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from profiles.segments.records import REASON_MERGE
from schemas.codec import SchemaRegistry
from streams.deadletters import DeadLetter
from streams.intake import Decoder
from streams.outbox import Outbox, SegmentOutbox
from streams.ports import ProfileApplier
from streams.records import Record
from streams.stages.profile import erased_rejection

STAGE = "merge-profiles"


@dataclass
class MergeOutput:
    """How many merges were folded, the records that could not be read, the segment changes, and
    the rejections of merges refused because a side is erased."""

    merged: int = 0
    deadletters: list[DeadLetter] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    erased: int = 0


class MergeStage:
    """``segment_outbox`` defaults to the Redis one under ``prefix`` (``client``)."""

    def __init__(self, *, store: ProfileApplier, registry: SchemaRegistry, merges_topic: str,
                 segment_outbox: Outbox[dict[str, Any]] | None = None, client: redis.Redis | None = None,
                 prefix: str = "") -> None:
        if segment_outbox is None:
            if client is None:
                raise TypeError("MergeStage needs a segment outbox or a Redis client")
            segment_outbox = SegmentOutbox(client, prefix)
        self._store = store
        self._outbox = segment_outbox
        self._intake = Decoder(STAGE, merges_topic, registry.decoder("identity_merge"))
        self._encode_segment = registry.encoder("segment_change")
        self._encode_rejection = registry.encoder("identity_rejection")

    def process(self, batch: Sequence[Record], now_ms: int) -> MergeOutput:
        intake = self._intake(batch)
        # an operator's unmerge is announced on the same topic for the lake; state is not folded
        merges = [merge for _, merge in intake.fresh if merge.get("kind", "merge") == "merge"]
        pairs = [(merge["survivor"], merge["merged"]) for merge in merges]
        outcomes = self._store.merge_many(pairs, now_ms)
        segments = [change for outcome in outcomes for change in outcome.get("segments", ())]
        out = MergeOutput(deadletters=intake.deadletters)
        for merge, outcome in zip(merges, outcomes, strict=True):
            if outcome.get("refused"):
                out.rejections.append(erased_rejection(self._encode_rejection, merge["merged"],
                                                       merge["message_id"], merge["timestamp"]))
        folded = [pair for pair, outcome in zip(pairs, outcomes, strict=True) if not outcome.get("refused")]
        if folded:
            survivors = dict.fromkeys(s for s, _ in folded)
            segments += self._store.refresh_segments(survivors, now_ms, REASON_MERGE)
        out.merged, out.erased, out.segments = len(folded), len(out.rejections), segments
        return out

    def encode_segment(self, change: dict[str, Any]) -> tuple[bytes, bytes]:
        return change["oneid"].encode(), self._encode_segment(change)

    def sent(self, segments: Sequence[dict[str, Any]]) -> None:
        """Kafka acknowledged these: they leave the segments outbox."""
        self._outbox.acknowledge(segments)
