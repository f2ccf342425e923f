"""Dead letters: records that reached Kafka but could not be decoded or processed.

Each carries the stage, a reason code, the error, where it came from (topic, partition, offset,
key) and the original bytes untouched, so ``touchstream deadletter replay`` can put it back on
its source topic once the cause is fixed. Nothing bad is dropped silently.

Stages return :class:`DeadLetter` values (errors travel as data); the loop that produces them
encodes them and counts them once Kafka acknowledged them (``streams/observer.py``), so a batch
retried after an outage is not counted twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from schemas.codec import default_registry
from streams.clients import client_config
from streams.records import Record

#: The longest error text a dead letter keeps.
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record that ends on the dead-letter topic, and why."""

    stage: str
    reason: str
    error: str
    record: Record
    source_topic: str | None = None  # None: the record's own topic
    attempts: int = 1

    def avro(self, failed_at_ms: int | None = None) -> dict[str, Any]:
        """The DeadLetter record (schemas/deadletter.avsc)."""
        record = self.record
        return dead_letter(self.stage, self.reason, self.error, original=record.value,
                           topic=self.source_topic if self.source_topic is not None else record.topic or None,
                           partition=record.partition, offset=record.offset, key=record.key,
                           attempts=self.attempts, failed_at_ms=failed_at_ms)


def dead_letter(stage: str, reason: str, error: str, *, original: bytes, topic: str | None = None,
                partition: int | None = None, offset: int | None = None, key: bytes | None = None,
                attempts: int = 1, failed_at_ms: int | None = None) -> dict[str, Any]:
    """A DeadLetter record (schemas/deadletter.avsc). Not counted: the producing loop counts it."""
    return {
        "stage": stage, "reason": reason, "error": error[:MAX_ERROR_CHARS], "source_topic": topic,
        "partition": partition, "offset": offset, "key": key, "original": original,
        "failed_at": failed_at_ms if failed_at_ms is not None else time.time_ns() // 1_000_000,
        "attempts": attempts,
    }


@cache
def _encoder() -> Callable[[dict[str, Any]], bytes]:
    return default_registry().encoder("deadletter")


def encode_dead_letters(letters: Sequence[DeadLetter]) -> list[tuple[bytes | None, bytes]]:
    """(key, DeadLetter bytes) pairs to produce, keyed like the original record."""
    if not letters:
        return []
    encode, now = _encoder(), time.time_ns() // 1_000_000
    return [(letter.record.key, encode(letter.avro(now))) for letter in letters]


@dataclass(frozen=True)
class StoredDeadLetter:
    """A dead letter as read back from its topic, with its own position there."""

    partition: int
    offset: int
    record: dict[str, Any]


def read_dead_letters(broker: str, topic: str, *, timeout: float = 10.0) -> Iterator[StoredDeadLetter]:
    """Every dead letter currently on the topic, oldest first."""
    consumer = Consumer(client_config(broker, **{"group.id": "touchstream-deadletter-reader",
                                                 "enable.auto.commit": False}))
    try:
        meta = consumer.list_topics(topic, timeout=timeout)
        ends = {}
        for p in meta.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if high > low:
                ends[p] = high
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        decode = default_registry().decoder("deadletter")
        deadline = time.monotonic() + timeout
        while ends and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            deadline = time.monotonic() + timeout
            # a polled message without an error has its partition, offset and value
            partition, offset, value = msg.partition(), msg.offset(), msg.value()
            yield StoredDeadLetter(partition, offset, decode(value))  # type: ignore[arg-type]
            if offset + 1 >= ends[partition]:  # type: ignore[operator]
                del ends[partition]
    finally:
        consumer.close()


def replay(broker: str, topic: str, *, stage: str | None = None, reason: str | None = None,
           redis_client: redis.Redis | None = None, prefix: str = "",
           before_send: Callable[[dict[str, Any]], None] | None = None,
           skip: Callable[[int, int, dict[str, Any]], bool] | None = None) -> int:
    """Put matching dead letters back on their source topic, each at most once; returns how many.

    Replayed positions are remembered in Redis (``<prefix>deadletter:replayed``) so a second
    replay does not send the same record again. ``before_send`` sees each record first (the CLI
    releases the stream claim of a record that failed while processing). A letter ``skip``
    answers True for (partition, offset, record) is never sent: one carrying an erased person
    (``streams/erased_letters.py``).
    """
    producer = Producer(client_config(broker, **{"enable.idempotence": True, "acks": "all"}))
    done_key = f"{prefix}deadletter:replayed"
    count = 0
    for stored in read_dead_letters(broker, topic):
        record = stored.record
        if (stage and record["stage"] != stage) or (reason and record["reason"] != reason):
            continue
        if not record["source_topic"]:
            continue
        position = f"{stored.partition}:{stored.offset}"
        if redis_client is not None and redis_client.sismember(done_key, position):
            continue
        if skip is not None and skip(stored.partition, stored.offset, record):
            continue
        if before_send is not None:
            before_send(record)
        producer.produce(record["source_topic"], record["original"], record["key"])
        if producer.flush(30):
            raise RuntimeError("replay: the broker did not acknowledge")
        if redis_client is not None:
            redis_client.sadd(done_key, position)
        count += 1
    return count
