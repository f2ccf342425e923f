"""Growth: do cost per event and memory per profile stay flat from 10k to 1M profiles?

One worker runs throughout on fresh topics. For each population size the run first brings the
population up to that size (one identify per new person: user id + email, through the whole
pipeline), then replays a fixed slice of returning-customer events (page views, product views,
orders) spread over the whole population and times only that slice, from the first produce
until the consumer group committed everything. Memory is read at the same point two ways: the
sampled ``MEMORY USAGE`` of a profile's hashes (state + identity profile), and Redis's whole
``used_memory`` growth divided by the population (indexes, claims, outboxes included).
AOF rewrites that ran during a timed slice are counted in its row: on two cores a rewrite of a
million profiles takes one of them for seconds.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Producer

from bench.pipeline import committed_all, forget, memory_per_profile, produce, start_worker
from connectors.ingest import partition_key
from schemas.codec import default_registry
from streams.topics import Topics, create_topics
from touchstream.settings import Settings

SIZES = (10_000, 100_000, 1_000_000)


def _person_event(i: int, now_ms: int, kind: str, rng: random.Random) -> dict[str, Any]:
    user = f"g{i:07d}"
    event: dict[str, Any] = {"message_id": uuid.uuid4().hex, "timestamp": now_ms, "received_at": now_ms,
                             "source": "bench-growth", "user_id": user,
                             "identifiers": [{"type": "user_id", "value": user}]}
    if kind == "identify":
        email = f"{user}@163.com"
        event.update(type="identify", traits=f'{{"email":"{email}","plan":"free"}}')
        event["identifiers"].append({"type": "email", "value": email})
    elif kind == "page":
        event.update(type="page", name="Pricing", properties='{"path":"/pricing"}')
    elif kind == "view":
        event.update(type="track", event="Product Viewed",
                     properties=f'{{"product_id":"p{rng.randrange(200)}","price":{rng.randrange(10, 500)}}}')
    else:
        order = f'{{"order_id":"{uuid.uuid4().hex[:12]}","revenue":{rng.randrange(20, 900)}}}'
        event.update(type="track", event="Order Completed", properties=order)
    return event


def _encoded(events: Sequence[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    encode = default_registry().encoder("event")
    return [(encode(e), partition_key(e)) for e in events]


def _produce_encoded(settings: Settings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = Producer({"bootstrap.servers": settings.broker, "linger.ms": 5, "compression.type": "lz4",
                         "queue.buffering.max.messages": 1_000_000})
    for value, key in records:
        producer.produce(topic, value, key)
    producer.flush(120)


def _wait(settings: Settings, topics: list[str], timeout: float) -> float:
    started = time.monotonic()
    while not committed_all(settings, topics):
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"worker did not catch up within {timeout:.0f}s")
        time.sleep(0.25)
    return time.monotonic()


def run(settings: Settings, log_dir: Path, sizes: Sequence[int] = SIZES, measured: int = 50_000,
        progress: Callable[[dict[str, Any]], None] = print) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    own = replace(settings, topic_prefix=f"bench-{run_id}-grow", app_id=f"bench-{run_id}-grow",
                  redis_prefix=f"bench:{run_id}:grow:")
    topics = Topics.of(own)
    create_topics(own)
    client = redis.Redis.from_url(own.redis_url)
    baseline_memory = int(client.info("memory")["used_memory"])
    rng = random.Random(11)
    worker = start_worker(own, log_dir / "bench-growth-worker.log")
    rows: list[dict[str, Any]] = []
    loaded = 0
    try:
        for size in sizes:
            now = time.time_ns() // 1_000_000
            load_started = time.monotonic()
            produce(own, topics.raw, (_person_event(i, now, "identify", rng) for i in range(loaded, size)),
                     timeout_s=300)
            _wait(own, [topics.raw, topics.resolved], timeout=3600)
            load_seconds = time.monotonic() - load_started
            loaded = size
            kinds = rng.choices(["page", "view", "order"], weights=[6, 3, 1], k=measured)
            slice_ = [_person_event(rng.randrange(size), now, kind, rng) for kind in kinds]
            records = _encoded(slice_)
            rewrites = int(client.info("persistence")["aof_rewrites"])
            started = time.monotonic()
            _produce_encoded(own, topics.raw, records)
            seconds = _wait(own, [topics.raw, topics.resolved], timeout=1800) - started
            rewrites = int(client.info("persistence")["aof_rewrites"]) - rewrites
            memory = memory_per_profile(own)
            used = int(client.info("memory")["used_memory"]) - baseline_memory
            row = {
                "profiles": size,
                "load_events_per_s": round((size - (rows[-1]["profiles"] if rows else 0)) / load_seconds),
                "events_per_s": round(measured / seconds),
                "us_per_event": round(seconds / measured * 1e6),
                "redis_bytes_per_profile": memory["redis_bytes_per_profile"],
                "redis_used_memory_per_profile": round(used / size),
                # an AOF rewrite forks Redis and takes a core for seconds: it shows in the rate
                "aof_rewrites_during_slice": rewrites,
            }
            rows.append(row)
            progress({"growth": row})
    finally:
        worker.terminate()
        worker.wait(60)
        forget(own)
    first, last = rows[0], rows[-1]
    return {
        "growth": rows,
        "growth_cost_per_event_ratio": round(last["us_per_event"] / max(1, first["us_per_event"]), 2),
        "growth_bytes_per_profile_ratio": round(
            last["redis_bytes_per_profile"] / max(1, first["redis_bytes_per_profile"]), 2),
    }
