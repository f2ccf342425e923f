"""The sink contract on the loop: flush each touched partition, then dead letters, then (loop) commit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import pytest

from streams.deadletters import DeadLetter
from streams.observer import StageObserver
from streams.records import Record
from streams.sinks import SinkDriver, touched


class ListSink:
    """Keeps flushed values per partition; a value b"bad" is dead-lettered, b"boom" raises."""

    def __init__(self) -> None:
        self.pending: dict[tuple[str, int], list[Record]] = defaultdict(list)
        self.written: dict[int, list[bytes]] = defaultdict(list)

    def add(self, record: Record) -> None:
        self.pending[(record.topic, record.partition)].append(record)

    def flush(self, topic: str, partition: int) -> Sequence[DeadLetter]:
        records = self.pending.pop((topic, partition))
        if any(r.value == b"boom" for r in records):
            raise ValueError("cannot write")
        self.written[partition].extend(r.value for r in records if r.value != b"bad")
        return [DeadLetter("lake", "invalid_values", "bad", r) for r in records if r.value == b"bad"]

    def drop(self) -> None:
        self.pending.clear()


class RecordingProducer:
    def __init__(self) -> None:
        self.sent: list[dict[str, int]] = []

    def send_all(self, batches: dict) -> None:
        self.sent.append({topic: len(items) for topic, items in batches.items()})


def _records(*values: tuple[int, bytes]) -> list[Record]:
    return [Record(p, i, None, v, "t") for i, (p, v) in enumerate(values)]


def test_touched_partitions_keep_first_seen_order() -> None:
    assert touched(_records((2, b""), (0, b""), (2, b""))) == [("t", 2), ("t", 0)]


def test_each_partition_is_flushed_and_its_dead_letters_produced_once() -> None:
    sink, producer = ListSink(), RecordingProducer()
    SinkDriver(sink, producer, "dlq", StageObserver())(_records((0, b"a"), (1, b"bad"), (0, b"b")))  # type: ignore[arg-type]
    assert dict(sink.written) == {0: [b"a", b"b"], 1: []}
    assert producer.sent == [{"dlq": 1}]


def test_a_failing_flush_leaves_nothing_buffered_for_the_retry() -> None:
    sink, producer = ListSink(), RecordingProducer()
    driver = SinkDriver(sink, producer, "dlq", StageObserver())  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        driver(_records((0, b"boom"), (1, b"x")))
    assert sink.pending == {} and producer.sent == []
