"""Identity merges -> the merged person's profile state folded into the survivor's.

Each merge is its own atomic script run and idempotent, so a batch that fails part-way is run
again whole; an undecodable merge record is dead-lettered so one bad record cannot stall the loop.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from schemas.codec import SchemaRegistry
from streams.deadletters import DeadLetter
from streams.intake import Decoder
from streams.ports import ProfileApplier
from streams.records import Record

STAGE = "merge-profiles"


@dataclass
class MergeOutput:
    """How many merges were folded, and the records that could not be read."""

    merged: int = 0
    deadletters: list[DeadLetter] = field(default_factory=list)


class MergeStage:
    def __init__(self, *, store: ProfileApplier, registry: SchemaRegistry, merges_topic: str) -> None:
        self._store = store
        self._intake = Decoder(STAGE, merges_topic, registry.decoder("identity_merge"))

    def process(self, batch: Sequence[Record]) -> MergeOutput:
        intake = self._intake(batch)
        # an operator's unmerge is announced on the same topic for the lake; state is not folded
        pairs = [(merge["survivor"], merge["merged"]) for _, merge in intake.fresh
                 if merge.get("kind", "merge") == "merge"]
        self._store.merge_many(pairs)
        return MergeOutput(merged=len(pairs), deadletters=intake.deadletters)
