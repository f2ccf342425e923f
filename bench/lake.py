"""The lake sink's throughput beside a bare confluent-kafka consumer over the same topic, same run.

``N`` resolved events (default 100,000: quick) go on a fresh resolved topic; a bare consumer
reads them (decodes nothing), then ``run_lake_sink`` writes them to a temporary lake (decode,
Arrow, a durable segment per partition and batch, zstd Parquet at the rolls). The sink's rate
counts from its first batch to its last roll, the final rolls of its clean stop included.

Then the same events again, by a group of its own, into a lake at an ``s3://`` URL on a local S3
server (moto's: Python, on this machine, so it measures the upload path's own cost, not a
network's): the spool stays local, each roll is uploaded. ``s3_*`` beside the local figures.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from apps.factory import lake_config
from bench.pipeline import consume_rate
from bench.s3_server import ACCESS_KEY, REGION, SECRET_KEY, s3_server
from connectors.lake import run_lake_sink
from connectors.lake.layout import table_files
from schemas.codec import EVENT, default_registry
from schemas.testing import T0, event_record
from streams.topics import Topics, create_topics, new_topics
from touchstream.settings import Settings

log = logging.getLogger(__name__)
DAY = 86_400_000


def produce(settings: Settings, count: int) -> None:
    """``count`` events of 5,000 people in time order over two days (a live stream: a roll holds
    one or two dates), with properties and context like the SDKs'."""
    encode = default_registry().encoder(EVENT)
    producer = Producer({"bootstrap.servers": settings.broker, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 20, "compression.type": "lz4"})
    topic = Topics.of(settings).resolved
    for n in range(count):
        oneid = f"o-{n % 5000:05d}"
        record = event_record("track" if n % 3 else "page", T0 + n * 2 * DAY // count,
                              message_id=f"b-{n}", oneid=oneid, event="Product Viewed", name="Pricing",
                              anonymous_id=f"a-{n % 7000}",
                              properties={"sku": f"sku-{n % 300}", "price": n % 997, "path": "/pricing"},
                              context={"ip": "10.0.0.1", "userAgent": "Mozilla/5.0", "locale": "zh-CN"})
        while True:
            try:
                producer.produce(topic, encode(record), oneid.encode())
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(60):
        raise RuntimeError("bench: the broker did not acknowledge every event")


def bench_lake(settings: Settings, events: int = 100_000) -> dict[str, Any]:
    """Bare consumer and lake sink over the same ``events``; must run in the main thread."""
    run = uuid.uuid4().hex[:8]
    settings = dataclasses.replace(settings, topic_prefix=f"bench-lake-{run}", app_id=f"bench-lake-{run}",
                                   lake_metrics_port=0)
    admin = AdminClient({"bootstrap.servers": settings.broker})
    with tempfile.TemporaryDirectory() as folder:
        try:
            create_topics(settings)
            produce(settings, events)
            cpu = time.process_time()
            bare = consume_rate(settings, events, Topics.of(settings).resolved)
            bare_cpu = time.process_time() - cpu
            config = dataclasses.replace(lake_config(settings), path=Path(folder))
            stats = run_lake_sink(config, stop_after_idle_s=3.0)
            parquet = sum(p.stat().st_size for p, _ in table_files(Path(folder), "events"))
            remote = _to_s3(settings, Path(folder))
        finally:
            for name, future in admin.delete_topics([t.topic for t in new_topics(settings)]).items():
                try:
                    future.result(30)
                except KafkaException as exc:  # cleanup only: report and go on
                    log.warning("bench: topic %s not deleted: %s", name, exc)
    busy = stats.active_s + stats.close_s
    rate = stats.records / busy if busy else 0.0
    return {
        "events": events, "rows": stats.rows, "files": stats.files, "parquet_bytes": parquet,
        "bare_consume_events_per_s": round(bare), "sink_events_per_s": round(rate),
        "sink_vs_bare": round(rate / bare, 3) if bare else 0.0,
        "close_rolls_seconds": round(stats.close_s, 2),
        "close_rolls_cpu_seconds": round(stats.close_cpu_s, 2),
        # CPU of the whole process (librdkafka's threads too): less disturbed than wall time by
        # whatever else the machine runs; the bare figure includes joining its group
        "bare_cpu_us_per_event": round(bare_cpu / events * 1e6, 1),
        "sink_cpu_us_per_event": round(stats.cpu_s / max(stats.records, 1) * 1e6, 1),
        **remote,
    }


def _to_s3(settings: Settings, folder: Path) -> dict[str, Any]:
    """The same topic by a group of its own into an ``s3://`` lake on a local S3 server."""
    with s3_server(folder / "s3.log") as s3:
        s3_settings = dataclasses.replace(
            settings, app_id=f"{settings.app_id}-s3", lake_s3_endpoint=s3.endpoint,
            lake_path=f"s3://{ACCESS_KEY}:{SECRET_KEY}@{s3.bucket()}/lake?region={REGION}",
            lake_spool_path=str(folder / "s3-spool"))
        stats = run_lake_sink(lake_config(s3_settings), stop_after_idle_s=3.0)
    busy = stats.active_s + stats.close_s
    return {"s3_rows": stats.rows, "s3_files": stats.files,
            "s3_sink_events_per_s": round(stats.records / busy) if busy else 0,
            "s3_close_rolls_seconds": round(stats.close_s, 2),
            "s3_close_rolls_cpu_seconds": round(stats.close_cpu_s, 2),
            "s3_sink_cpu_us_per_event": round(stats.cpu_s / max(stats.records, 1) * 1e6, 1)}


def main(argv: list[str]) -> None:
    logging.basicConfig(level="WARNING")
    events = int(argv[0]) if argv else 100_000
    print(json.dumps(bench_lake(Settings.from_env(), events), indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
