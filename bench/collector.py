"""Collector throughput vs the bare confluent-kafka producer, measured in the same run.

The baseline produces pre-encoded Avro events straight to a topic (the ceiling for anything that
writes to Kafka from Python here). The collector figure is end to end: HTTP batches of 100
Segment messages, validated, deduplicated, encoded, produced and acknowledged before the 200.
"""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
import uuid
from typing import Any

import aiohttp
from confluent_kafka import Producer

from apps.procs import wait_http
from bench.codec import sample_event
from connectors.producer import producer_config
from schemas.codec import default_registry
from streams.topics import Topics, create_topics
from touchstream.keys import KeyStore
from touchstream.settings import Settings


def bare_producer_rate(settings: Settings, events: int) -> float:
    """Events/s of a confluent-kafka producer loop (same config as the collector's) incl. flush."""
    encode = default_registry().encoder("event")
    payloads = [encode(sample_event(i)) for i in range(min(events, 10_000))]
    producer = Producer(producer_config(settings.broker))
    topic = Topics.of(settings).raw
    started = time.perf_counter()
    for i in range(events):
        while True:
            try:
                producer.produce(topic, payloads[i % len(payloads)], b"k%d" % (i % 5000))
                break
            except BufferError:
                producer.poll(0.01)
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush(60)
    return events / (time.perf_counter() - started)


def _messages(run: str, start: int, count: int) -> list[dict[str, Any]]:
    return [
        {"type": "track", "messageId": f"{run}-{i}", "userId": f"user-{i % 20_000}",
         "anonymousId": f"anon-{i % 30_000}", "event": "Product Viewed",
         "properties": {"sku": f"SKU-{i % 997}", "price": 19.9, "path": "/features/segments"},
         "context": {"traits": {"email": f"user{i % 20_000}@example.com"}, "channel": "web",
                     "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)"}}
        for i in range(start, start + count)
    ]


async def _send(base: str, key: str, events: int, batch: int, concurrency: int) -> float:
    run = uuid.uuid4().hex[:8]
    auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    bodies = [json.dumps({"batch": _messages(run, s, min(batch, events - s))}, allow_nan=False).encode()
              for s in range(0, events, batch)]
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            body = queue.get_nowait()
            async with session.post(base + "/v1/batch", data=body,
                                    headers={"Authorization": auth, "Content-Type": "application/json"}) as r:
                if r.status != 200:
                    raise RuntimeError(f"collector answered {r.status}: {await r.text()}")

    started = time.perf_counter()
    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return events / (time.perf_counter() - started)


def collector_rate(settings: Settings, events: int, *, batch: int = 100, concurrency: int = 8) -> float:
    """Events/s through a real `touchstream serve` process (acknowledged by Kafka)."""
    import redis

    # The bench measures throughput, not the rate limit: its key may send a million events a second.
    key = KeyStore(redis.Redis.from_url(settings.redis_url), settings.redis_prefix).create(
        "write", "bench", rate=1_000_000, burst=1_000_000)
    proc = subprocess.Popen([sys.executable, "-m", "apps.cli", "serve"], env=settings.child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://{settings.http_host}:{settings.http_port}"
    try:
        wait_http(base + "/healthz", proc)
        asyncio.run(_send(base, key, min(events, 20_000), batch, concurrency))  # warm-up
        return asyncio.run(_send(base, key, events, batch, concurrency))
    finally:
        proc.terminate()
        proc.wait(30)


def run(settings: Settings, events: int) -> dict[str, float]:
    create_topics(settings)
    baseline = bare_producer_rate(settings, events)
    collector = collector_rate(settings, events)
    return {
        "collector_events_per_s": round(collector),
        "baseline_producer_events_per_s": round(baseline),
        "collector_vs_producer_ratio": round(collector / baseline, 3),
    }
