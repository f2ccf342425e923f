"""The one record type every loop, stage and sink takes: where a Kafka message was, and its bytes.

A NamedTuple rather than a frozen dataclass: it is built once per consumed message on the hot
path, and a tuple is the cheapest immutable object Python builds (positional construction also
keeps ``Record(partition, offset, key, value)`` working for the benchmarks).
"""

from __future__ import annotations

from typing import NamedTuple


class Record(NamedTuple):
    """One consumed message: position, key and original bytes (immutable)."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    topic: str = ""

    @property
    def position(self) -> str:
        """``partition:offset``, the claim value that tells a replay from a duplicate."""
        return f"{self.partition}:{self.offset}"
