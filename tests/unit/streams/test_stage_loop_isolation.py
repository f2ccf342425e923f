"""StageLoop's failure split: data errors isolate the record that fails, outages retry the batch.

Pure logic: the loop's batch processing is driven directly, without a consumer.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import redis.exceptions
from confluent_kafka import KafkaError, KafkaException

from streams.failures import is_infrastructure
from streams.records import Record
from streams.stage_loop import StageLoop, Stopped


def _records(n: int) -> list[Record]:
    return [Record(0, offset, None, f"v{offset}".encode(), "raw") for offset in range(n)]


class Stage:
    """Processes records, remembering each one it applied; ``poison`` offsets raise."""

    def __init__(self, poison: set[int], outage_attempts: int = 0) -> None:
        self.poison = poison
        self.outage_attempts = outage_attempts
        self.applied: list[int] = []
        self.calls = 0
        self.dead: list[tuple[int, str]] = []

    def handle(self, batch: Sequence[Record]) -> None:
        self.calls += 1
        if self.outage_attempts:
            self.outage_attempts -= 1
            raise redis.exceptions.ConnectionError("Connection refused")
        bad = [r.offset for r in batch if r.offset in self.poison]
        if bad:
            raise ValueError(f"cannot parse record {bad[0]}")
        self.applied.extend(r.offset for r in batch)

    def dead_letter(self, record: Record, error: BaseException) -> None:
        self.dead.append((record.offset, type(error).__name__))


def _loop(stage: Stage, stop: threading.Event | None = None) -> StageLoop:
    return StageLoop("profile", {}, ["raw"], stage.handle, poison=stage.dead_letter, batch_size=500,
                     within_s=0.01, stop=stop or threading.Event(), max_backoff_s=0.01)


def test_one_bad_record_is_dead_lettered_and_every_other_record_is_processed_in_order() -> None:
    stage = Stage(poison={37})
    assert _loop(stage)._process_until_done(_records(100))
    assert stage.dead == [(37, "ValueError")]
    assert stage.applied == [o for o in range(100) if o != 37]
    assert stage.calls < 30  # bisection, not one call per record


def test_several_bad_records_each_become_a_dead_letter() -> None:
    stage = Stage(poison={0, 5, 6, 99})
    assert _loop(stage)._process_until_done(_records(100))
    assert [offset for offset, _ in stage.dead] == [0, 5, 6, 99]
    assert sorted(stage.applied) == [o for o in range(100) if o not in {0, 5, 6, 99}]


def test_an_outage_retries_the_whole_batch_and_dead_letters_nothing() -> None:
    stage = Stage(poison=set(), outage_attempts=3)
    assert _loop(stage)._process_until_done(_records(10))
    assert stage.dead == []
    assert stage.applied == list(range(10))
    assert stage.calls == 4


def test_a_stop_during_an_outage_leaves_the_batch_unprocessed() -> None:
    stop = threading.Event()
    stage = Stage(poison=set(), outage_attempts=10**9)
    loop = _loop(stage, stop)
    threading.Timer(0.1, stop.set).start()
    assert not loop._process_until_done(_records(10))
    assert stage.applied == []
    assert stage.dead == []


def test_a_dead_letter_write_that_meets_an_outage_is_retried() -> None:
    stage = Stage(poison={1})
    failures = [KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT))]

    def flaky_dead_letter(record: Record, error: BaseException) -> None:
        if failures:
            raise failures.pop()
        stage.dead_letter(record, error)

    loop = StageLoop("resolve", {}, ["raw"], stage.handle, poison=flaky_dead_letter, batch_size=10,
                     within_s=0.01, stop=threading.Event(), max_backoff_s=0.01)
    assert loop._process_until_done(_records(3))
    assert stage.dead == [(1, "ValueError")]
    assert stage.applied == [0, 2]


def test_infrastructure_errors_are_told_from_data_errors() -> None:
    assert is_infrastructure(redis.exceptions.ConnectionError("refused"))
    assert is_infrastructure(redis.exceptions.BusyLoadingError("LOADING Redis is loading"))
    assert is_infrastructure(redis.exceptions.ResponseError("OOM command not allowed"))
    assert is_infrastructure(KafkaException(KafkaError(KafkaError._MSG_TIMED_OUT)))
    unpack = redis.exceptions.ResponseError("ERR user_script:1: too many results to unpack")
    assert not is_infrastructure(unpack)
    assert not is_infrastructure(ValueError("Invalid IPv6 URL"))
    assert not is_infrastructure(KeyError("path"))


def test_a_handler_that_raises_stopped_ends_the_batch_uncommitted_without_bisecting() -> None:
    calls: list[int] = []

    def handle(batch: Sequence[Record]) -> None:
        calls.append(len(batch))
        raise Stopped("deliveries abandoned")

    loop = StageLoop("webhook", {}, ["t"], handle, poison=lambda record, error: None, batch_size=10,
                     within_s=0.01, stop=threading.Event())
    assert loop._process_until_done(_records(8)) is False
    assert calls == [8]
