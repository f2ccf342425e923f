"""The first step of every stage: decode each record, claim its messageId, dead-letter what fails.

One place for what resolve, profile and merge-profiles each wrote by hand: an undecodable record
becomes a ``avro_decode`` dead letter (one bad record must not stall the loop), and a record
whose (source, messageId) another position already claimed is a duplicate, counted and skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.exceptions import DecodeError
from streams.deadletters import DeadLetter
from streams.ports import ClaimLedger
from streams.records import Record

Decoded = tuple[Record, dict[str, Any]]


@dataclass
class Intake:
    """What survived decoding and dedup, in input order, and what did not."""

    fresh: list[Decoded] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0


class Decoder:
    """Decode -> claim -> dead-letter for one stage; ``claims=None`` skips dedup (merge records)."""

    def __init__(self, stage: str, topic: str, decode: Callable[[bytes], dict[str, Any]],
                 claims: ClaimLedger | None = None) -> None:
        self._stage = stage
        self._topic = topic
        self._decode = decode
        self._claims = claims

    def __call__(self, batch: Sequence[Record]) -> Intake:
        out = Intake()
        decoded: list[Decoded] = []
        decode = self._decode
        for record in batch:
            try:
                decoded.append((record, decode(record.value)))
            except DecodeError as exc:
                out.deadletters.append(DeadLetter(self._stage, "avro_decode", str(exc), record, self._topic))
        if self._claims is None:
            out.fresh = decoded
            return out
        keep = self._claims.claim([(e["source"], e["message_id"], r.position) for r, e in decoded])
        out.fresh = [item for item, kept in zip(decoded, keep, strict=True) if kept]
        out.duplicates = len(decoded) - len(out.fresh)
        return out

    def dead(self, record: Record, reason: str, error: str) -> DeadLetter:
        """A dead letter of this stage for a record that decoded but cannot be processed."""
        return DeadLetter(self._stage, reason, error, record, self._topic)
