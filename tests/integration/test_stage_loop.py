"""StageLoop on the real broker: a poison record is isolated, an outage is waited out in the group.

The stage here is a plain function so the test is about the loop: what it commits, what it hands
the stage, in which order, and whether the member stays in its group while it waits.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict

import redis.exceptions
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.records import Record
from streams.stage_loop import StageLoop, consumer_config


def _topic(settings, partitions: int = 3) -> str:  # type: ignore[no-untyped-def]
    name = f"{settings.topic_prefix}.loop-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": settings.broker})
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(timeout=30)
    return name


def _produce(settings, topic: str, values: list[str]) -> None:  # type: ignore[no-untyped-def]
    producer = Producer({"bootstrap.servers": settings.broker, "enable.idempotence": True, "acks": "all"})
    for i, value in enumerate(values):
        producer.produce(topic, value.encode(), f"k{i % 7}".encode())
    assert producer.flush(30) == 0


def _committed(settings, group: str, topic: str) -> dict[int, int]:  # type: ignore[no-untyped-def]
    consumer = Consumer({"bootstrap.servers": settings.broker, "group.id": group})
    try:
        parts = [TopicPartition(topic, p) for p in range(3)]
        return {tp.partition: tp.offset for tp in consumer.committed(parts, timeout=10)}
    finally:
        consumer.close()


def _ends(settings, topic: str) -> dict[int, int]:  # type: ignore[no-untyped-def]
    consumer = Consumer({"bootstrap.servers": settings.broker, "group.id": "ends"})
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(3)}
    finally:
        consumer.close()


class Recorder:
    """A stage: applies records (by partition, in order), raises on poison, fails during an outage."""

    def __init__(self) -> None:
        self.applied: dict[int, list[str]] = defaultdict(list)
        self.dead: list[tuple[str, str]] = []
        self.outage_until = 0.0
        self.lock = threading.Lock()

    def handle(self, batch) -> None:  # type: ignore[no-untyped-def]
        if time.monotonic() < self.outage_until:
            raise redis.exceptions.ConnectionError("Error 111 connecting to 127.0.0.1:6379")
        if any(r.value.startswith(b"poison") for r in batch):
            raise ValueError("Invalid IPv6 URL")
        with self.lock:
            for r in batch:
                self.applied[r.partition].append(r.value.decode())

    def poison(self, record: Record, error: BaseException) -> None:
        self.dead.append((record.value.decode(), type(error).__name__))

    def count(self) -> int:
        with self.lock:
            return sum(len(v) for v in self.applied.values())


def _run(loop: StageLoop) -> threading.Thread:
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    return thread


def _wait(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_poison_records_are_dead_lettered_and_everything_else_is_applied_and_committed(settings):
    topic, group = _topic(settings), f"g-{uuid.uuid4().hex[:6]}"
    values = [("poison" if i in (13, 140, 141) else "ok") + f"-{i}" for i in range(300)]
    _produce(settings, topic, values)
    stage, stop = Recorder(), threading.Event()
    loop = StageLoop("test", consumer_config(settings.broker, group, "t"), [topic], stage.handle,
                     poison=stage.poison, batch_size=100, within_s=0.05, stop=stop)
    thread = _run(loop)
    _wait(lambda: stage.count() == 297 and len(stage.dead) == 3)
    stop.set()
    thread.join(30)
    assert sorted(stage.dead) == sorted((f"poison-{i}", "ValueError") for i in (13, 140, 141))
    applied = [v for values_ in stage.applied.values() for v in values_]
    assert sorted(applied) == sorted(v for v in values if v.startswith("ok"))
    for in_partition in stage.applied.values():  # order within a partition is kept
        numbers = [int(v.split("-")[1]) for v in in_partition]
        assert numbers == sorted(numbers)
    assert _committed(settings, group, topic) == _ends(settings, topic)


def test_an_outage_longer_than_the_poll_interval_is_waited_out_without_leaving_the_group(settings):
    topic, group = _topic(settings), f"g-{uuid.uuid4().hex[:6]}"
    _produce(settings, topic, [f"ok-{i}" for i in range(60)])
    stage, stop = Recorder(), threading.Event()
    # the broker's shortest session is 6 s; the poll interval may not be shorter than the session
    config = {**consumer_config(settings.broker, group, "t"), "session.timeout.ms": 6_000,
              "heartbeat.interval.ms": 1_000, "max.poll.interval.ms": 6_000}
    loop = StageLoop("test", config, [topic], stage.handle, poison=stage.poison, batch_size=20,
                     within_s=0.05, stop=stop, max_backoff_s=0.5)
    revocations: list[int] = []
    original_revoke = loop._on_revoke

    def counting_revoke(consumer, partitions):  # type: ignore[no-untyped-def]
        if not stop.is_set():  # closing the consumer at the end revokes everything
            revocations.append(len(partitions))
        original_revoke(consumer, partitions)

    loop._on_revoke = counting_revoke  # type: ignore[method-assign]
    stage.outage_until = time.monotonic() + 12.0  # twice max.poll.interval.ms
    thread = _run(loop)
    time.sleep(2.0)
    _produce(settings, topic, [f"ok-{i}" for i in range(60, 120)])  # arrives during the outage
    _wait(lambda: stage.count() == 120)
    stop.set()
    thread.join(30)
    assert stage.dead == []
    assert sorted(v for vs in stage.applied.values() for v in vs) == sorted(f"ok-{i}" for i in range(120))
    assert revocations == [], "the member left its group while it waited"
    assert _committed(settings, group, topic) == _ends(settings, topic)
