"""StageLoop's commit bookkeeping: a commit refused mid-rebalance is sent again, never lost.

Pure logic with a recording fake consumer; the real loop runs against Kafka in the pipeline,
two-worker and SIGKILL integration tests.
"""

from __future__ import annotations

import threading

from confluent_kafka import KafkaError, TopicPartition

from streams.stage_loop import StageLoop


class RecordingConsumer:
    def __init__(self) -> None:
        self.commits: list[list[tuple[str, int, int]]] = []

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> list[TopicPartition]:
        self.commits.append([(tp.topic, tp.partition, tp.offset) for tp in offsets])
        return offsets


def _loop() -> StageLoop:
    loop = StageLoop("resolve", {}, ["raw"], lambda batch: None, poison=lambda record, error: None,
                     batch_size=10, within_s=0.01,
                     stop=threading.Event())
    loop._on_assign(None, [TopicPartition("raw", 0), TopicPartition("raw", 1)])  # type: ignore[arg-type]
    return loop


def test_a_refused_commit_is_sent_again_and_forgotten_once_taken() -> None:
    loop, consumer = _loop(), RecordingConsumer()
    loop._uncommitted[("raw", 0)] = 10
    loop._commit(consumer)  # type: ignore[arg-type]
    loop._on_commit(KafkaError(KafkaError.ILLEGAL_GENERATION), [TopicPartition("raw", 0, 10)])
    assert loop._uncommitted == {("raw", 0): 10}
    loop._commit(consumer)  # type: ignore[arg-type]
    assert consumer.commits == [[("raw", 0, 10)], [("raw", 0, 10)]]
    loop._on_commit(None, [TopicPartition("raw", 0, 10)])
    assert loop._uncommitted == {}


def test_an_older_commit_taken_late_keeps_the_newer_position_pending() -> None:
    loop = _loop()
    loop._uncommitted[("raw", 1)] = 12
    loop._on_commit(None, [TopicPartition("raw", 1, 5)])
    assert loop._uncommitted == {("raw", 1): 12}


def test_revoked_partitions_are_neither_committed_nor_kept() -> None:
    loop, consumer = _loop(), RecordingConsumer()
    loop._uncommitted.update({("raw", 0): 3, ("raw", 1): 4})
    loop._on_revoke(None, [TopicPartition("raw", 1)])  # type: ignore[arg-type]
    loop._commit(consumer)  # type: ignore[arg-type]
    assert consumer.commits == [[("raw", 0, 3)]]
    assert ("raw", 1) not in loop._uncommitted
