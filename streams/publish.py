"""Producing segment changes recorded outside a stage loop (an SQL segment refresh).

The profile script left them in the segments outbox; :class:`SegmentPublisher` produces them to
the segments topic, blocks until Kafka acknowledged them, then clears them from the outbox: the
same order a stage loop keeps, so a crash in between re-sends them (same idempotency keys).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from profiles import layout
from schemas.codec import SchemaRegistry
from streams.outbox import SegmentOutbox
from streams.producers import BlockingProducer


class SegmentPublisher:
    """A producer, the segments topic and the outbox its records wait in."""

    def __init__(self, producer: BlockingProducer, topic: str, outbox: SegmentOutbox,
                 registry: SchemaRegistry) -> None:
        self._producer = producer
        self._topic = topic
        self._outbox = outbox
        self._encode = registry.encoder("segment_change")

    def send(self, changes: Sequence[dict[str, Any]]) -> None:
        if changes:
            self._producer.send_all({self._topic: [(c["oneid"].encode(), self._encode(c)) for c in changes]})
            self._outbox.acknowledge(changes)

    def leftovers(self) -> list[dict[str, Any]]:
        """What a refresh cut short left unsent (refreshes run one at a time: none is in flight)."""
        return self._outbox.left_by(layout.WRITER_REFRESH)
