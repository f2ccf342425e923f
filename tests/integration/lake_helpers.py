"""Shared by the lake's integration tests: a `touchstream lake run` process, records on topics,
the lake group's progress and the rows of the lake."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from connectors.lake import layout
from connectors.lake.sink import lake_topics as sink_topics
from streams.topics import create_topics
from tests.integration.conftest import CliProcess
from touchstream.settings import Settings


def lake_settings(settings: Settings, path: Path | str, *, own_topics: bool = False,
                  **overrides: object) -> Settings:
    """This run's topics (or, with ``own_topics``, fresh ones of the test's own: the run's topics
    hold every other test's records) with a lake folder and a lake consumer group of its own."""
    name = f"lake-{uuid.uuid4().hex[:8]}"
    if own_topics:
        overrides["topic_prefix"] = f"{settings.topic_prefix}-{name}"
    lake = replace(settings, app_id=name, lake_path=str(path), lake_metrics_port=0,
                   **overrides)  # type: ignore[arg-type]
    if own_topics:
        create_topics(lake)
    return lake


class LakeProcess(CliProcess):
    """A real `touchstream lake run`."""

    command = ("lake", "run")


def produce(settings: Settings, topic: str, values: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": settings.broker, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 5})
    for key, value in values:
        producer.produce(topic, value, key)
        producer.poll(0)
    assert producer.flush(30) == 0


def lake_topics(settings: Settings) -> list[str]:
    return list(sink_topics(settings.topic_prefix))


def progress(settings: Settings, group: str, timeout: float = 30.0) -> tuple[int, int]:
    """(records the group committed, records on the lake's topics) summed over partitions."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _progress(settings, group)
        except KafkaException:  # leaders of just-created topics are still being elected
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _progress(settings: Settings, group: str) -> tuple[int, int]:
    consumer = Consumer({"bootstrap.servers": settings.broker, "group.id": group,
                         "enable.auto.commit": False})
    try:
        parts = []
        for topic in lake_topics(settings):
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            parts += [TopicPartition(topic, p) for p in meta.partitions]
        highs = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts]
        committed = [max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10)]
        return sum(committed), sum(highs)
    finally:
        consumer.close()


def wait_committed(settings: Settings, group: str, timeout: float = 120.0) -> None:
    """Until the lake group committed every record of its topics."""
    deadline = time.monotonic() + timeout
    done = (0, -1)
    while time.monotonic() < deadline:
        try:
            done = progress(settings, group)
            if done[0] >= done[1]:
                return
        except KafkaException:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"lake group committed {done[0]} of {done[1]}")


def rows(root: Path, table: str, columns: list[str]) -> list[dict]:
    """Every row the lake's readers see in ``table``."""
    found: list[dict] = []
    for path, _ in layout.live(layout.table_files(root, table)):
        found += pq.ParquetFile(path).read(columns=columns).to_pylist()
    return found
