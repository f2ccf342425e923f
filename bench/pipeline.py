"""Pipeline throughput, trigger latency, memory per profile, and their baselines, on the real stack.

- ``pipeline_events_per_s``: N synthetic multi-channel events pre-loaded on a fresh raw topic,
  then one worker process (raw -> resolved -> profile -> triggers); timed from the worker's
  first resolved record until its consumer group committed everything on raw and resolved.
- ``baseline_consume_events_per_s``: a bare confluent-kafka consumer loop over the same topic.
- ``baseline_naive_events_per_s``: the same stages, in process, one event per call (one Redis
  round trip per step per event, as a team would first write it), against the same stages with
  batches of 500 (``inprocess_batched_events_per_s``) on the same events.
- ``p50/p99_trigger_latency_ms``: the same synthetic mix paced at half the measured pipeline
  rate, one event in 20 a "Demo Requested" probe; latency from the probe's produce time to its
  trigger's produce time (Kafka timestamp).
- ``redis_bytes_per_profile``: MEMORY USAGE of profile state plus the identity graph's share;
  ``redis_claim_bytes_per_event``: the stream claims (per event, for the dedup window).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from apps.factory import identity_graph, profile_rules, profile_store
from connectors.ingest import partition_key
from identity.synthetic import generate, squeeze
from profiles.store import ProfileStore
from schemas.codec import default_registry
from streams.stages.profile import ProfileStage
from streams.stages.resolve import RawRecord, ResolveStage
from streams.topics import Topics, create_topics
from touchstream.settings import Settings


def synthetic_events(count: int, *, seed: int = 7) -> list[dict[str, Any]]:
    """About ``count`` events from the ground-truth generator, squeezed into the last hour."""
    persons = max(10, count // 28)
    events, _ = generate(persons, seed)
    return squeeze(events[:count], time.time_ns() // 1_000_000 - 3_600_000, 3_600_000)


def produce(settings: Settings, topic: str, events: Iterable[dict[str, Any]],
             timeout_s: float = 120) -> None:
    encode = default_registry().encoder("event")
    producer = Producer({"bootstrap.servers": settings.broker, "linger.ms": 20, "compression.type": "lz4",
                         "queue.buffering.max.messages": 1_000_000})
    for event in events:
        while True:
            try:
                producer.produce(topic, encode(event), partition_key(event))
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(timeout_s)


def committed_all(settings: Settings, topics: list[str]) -> bool:
    consumer = Consumer({"bootstrap.servers": settings.broker, "group.id": settings.app_id,
                         "enable.auto.commit": False})
    try:
        for topic in topics:
            parts = [TopicPartition(topic, p)
                     for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions]
            committed = consumer.committed(parts, timeout=10)
            for tp in committed:
                if max(tp.offset, 0) < consumer.get_watermark_offsets(tp, timeout=10)[1]:  # -1001: none yet
                    return False
        return True
    finally:
        consumer.close()


def start_worker(settings: Settings, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "apps.cli", "worker"],
                                env=settings.child_env(), stdout=out, stderr=subprocess.STDOUT)


def _first_record(settings: Settings, topic: str, timeout: float = 120.0) -> float:
    consumer = Consumer({"bootstrap.servers": settings.broker, "group.id": f"bench-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                return time.monotonic()
        raise TimeoutError(f"nothing on {topic} within {timeout:.0f}s")
    finally:
        consumer.close()


def pipeline_rate(settings: Settings, events: list[dict[str, Any]], log_dir: Path,
                  workers: int = 1) -> dict[str, Any]:
    """Events/s of ``workers`` worker processes in one consumer group over pre-loaded events."""
    topics = Topics.of(settings)
    create_topics(settings)
    produce(settings, topics.raw, events)
    procs = [start_worker(replace(settings, worker_web_port=settings.worker_web_port + i),
                           log_dir / f"bench-worker-{i}.log") for i in range(workers)]
    try:
        if workers > 1:
            time.sleep(3)  # all join before the clock starts, so the partitions are shared
        started = _first_record(settings, topics.resolved)
        while not committed_all(settings, [topics.raw, topics.resolved]):
            time.sleep(0.25)
        seconds = time.monotonic() - started
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)
    suffix = "" if workers == 1 else f"_{workers}_workers"
    return {f"pipeline{suffix}_events_per_s": round(len(events) / seconds),
            f"pipeline{suffix}_seconds": round(seconds, 1)}


def consume_rate(settings: Settings, count: int, topic: str | None = None) -> float:
    """Events/s of a bare confluent-kafka consumer over ``topic`` (default: the raw topic); it
    decodes nothing and commits nothing: the baseline every sink and stage is measured beside."""
    topic = topic or Topics.of(settings).raw
    consumer = Consumer({"bootstrap.servers": settings.broker, "group.id": f"bench-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    seen, started = 0, None
    while seen < count:
        messages = consumer.consume(1000, timeout=1.0)
        if messages and started is None:
            started = time.perf_counter()
        seen += sum(1 for m in messages if not m.error())
    elapsed = time.perf_counter() - (started or time.perf_counter())
    consumer.close()
    return count / elapsed if elapsed else 0.0


def _stages(settings: Settings, client: redis.Redis) -> tuple[ResolveStage, ProfileStage]:
    registry = default_registry()
    topics = Topics.of(settings)
    graph = identity_graph(settings, client)
    resolve = ResolveStage(client=client, graph=graph,
                           registry=registry, prefix=settings.redis_prefix, raw_topic=topics.raw,
                           dedup_window_s=settings.stream_dedup_window_s,
                           event_time_skew_ms=settings.event_time_skew_s * 1000)
    profile = ProfileStage(client=client, store=profile_store(settings, client),
                           registry=registry, prefix=settings.redis_prefix, resolved_topic=topics.resolved,
                           dedup_window_s=settings.stream_dedup_window_s)
    return resolve, profile


def inprocess_rate(settings: Settings, events: list[dict[str, Any]], batch: int) -> float:
    """Resolve + profile stages without Kafka, ``batch`` events per call; events/s."""
    client = redis.Redis.from_url(settings.redis_url)
    resolve, profile = _stages(settings, client)
    encode = default_registry().encoder("event")
    raw = [RawRecord(0, i, None, encode(e)) for i, e in enumerate(events)]
    now = time.time_ns() // 1_000_000
    started = time.perf_counter()
    for start in range(0, len(raw), batch):
        out = resolve.process(raw[start:start + batch])
        resolved = [RawRecord(0, start + i, k, v) for i, (k, v) in enumerate(out.resolved)]
        profile.process(resolved, now)
    return len(raw) / (time.perf_counter() - started)


def trigger_latency(settings: Settings, rate: float, seconds: float, log_dir: Path,
                    probe_every: int = 20) -> dict[str, float]:
    """Event-to-trigger latency under the synthetic mix paced at ``rate`` events/s.

    Every ``probe_every``-th event is a "Demo Requested" of a new person (a trigger rule); the
    rest is the same multi-channel mix as the throughput run (other people, another seed, so
    nothing is a duplicate of it). Latency: the probe's produce time to its trigger's Kafka
    timestamp (set when the worker produced it).
    """
    topics = Topics.of(settings)
    create_topics(settings)
    worker = start_worker(settings, log_dir / "bench-latency-worker.log")
    encode = default_registry().encoder("event")
    background = [(encode(e), partition_key(e)) for e in synthetic_events(int(rate * seconds), seed=13)]
    producer = Producer({"bootstrap.servers": settings.broker, "linger.ms": 1,
                         "queue.buffering.max.messages": 1_000_000})
    consumer = Consumer({"bootstrap.servers": settings.broker, "group.id": f"bench-{uuid.uuid4().hex}",
                         "auto.offset.reset": "latest"})
    consumer.subscribe([topics.triggers])
    decode = default_registry().decoder("trigger")
    sent: dict[str, float] = {}
    latencies: list[float] = []
    run = uuid.uuid4().hex[:8]
    probes = 0
    try:
        # warm up: the worker joins, the consumer gets its assignment
        _produce_demo(producer, topics.raw, encode, f"{run}-warm", 0)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                break
        tick = 0.01  # send in 10 ms slices: smooth enough, and cheap for the sender
        per_tick = rate * tick
        owed, i = 0.0, 0
        next_at = time.monotonic()
        while i < len(background):
            owed += per_tick
            while owed >= 1 and i < len(background):
                owed -= 1
                if i % probe_every == 0:
                    mid = f"{run}-{probes}"
                    sent[mid] = time.time()
                    _produce_demo(producer, topics.raw, encode, mid, probes)
                    probes += 1
                else:
                    value, key = background[i]
                    producer.produce(topics.raw, value, key)
                i += 1
            producer.poll(0)
            while (msg := consumer.poll(0)) is not None:
                _record_latency(msg, decode, sent, latencies)
            next_at += tick
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        producer.flush(30)
        deadline = time.monotonic() + 60
        while len(latencies) < probes and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None:
                _record_latency(msg, decode, sent, latencies)
    finally:
        consumer.close()
        worker.terminate()
        worker.wait(60)
    latencies.sort()
    if not latencies:
        return {"p50_trigger_latency_ms": -1.0, "p99_trigger_latency_ms": -1.0, "latency_samples": 0}
    return {
        "p50_trigger_latency_ms": round(statistics.median(latencies), 1),
        "p99_trigger_latency_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
        "latency_samples": len(latencies),
        "latency_probes_lost": probes - len(latencies),
        "latency_rate_events_per_s": round(rate),
    }


def _produce_demo(producer: Producer, topic: str, encode, mid: str, i: int) -> None:  # type: ignore[no-untyped-def]
    now = time.time_ns() // 1_000_000
    user = f"lat-{mid}"
    event = {"message_id": mid, "type": "track", "event": "Demo Requested", "user_id": user,
             "timestamp": now, "received_at": now, "source": "bench",
             "identifiers": [{"type": "user_id", "value": user}]}
    producer.produce(topic, encode(event), f"user_id:{user}".encode())
    producer.poll(0)


def _record_latency(msg, decode, sent: dict[str, float], latencies: list[float]) -> None:  # type: ignore[no-untyped-def]
    if msg.error():
        return
    trigger = decode(msg.value())
    started = sent.pop(trigger["message_id"] or "", None)
    if started is not None and trigger["rule"] == "demo_requested":
        latencies.append((msg.timestamp()[1] / 1000 - started) * 1000)


def memory_per_profile(settings: Settings, limit: int = 50_000) -> dict[str, float]:
    """Redis bytes per profile: its state keys plus its identity-graph hash, over every profile.

    All profiles (up to ``limit``), not a sample: one person with seven identifiers weighs
    several anonymous visitors, and a 300-profile sample swung between 865 and 1,570 B across
    two 1M-event runs. The identity index (value -> OneID) is shared and not counted here; the
    growth study's used_memory column includes it.
    """
    client = redis.Redis.from_url(settings.redis_url)
    store = ProfileStore(client, settings.redis_prefix, profile_rules(settings))
    graph = identity_graph(settings, client)
    oneids = []
    for key in client.scan_iter(match=f"{settings.redis_prefix}p:{{*}}", count=5000):
        name = key.decode()
        if name.endswith("}"):
            oneids.append(name[name.index("{") + 1:-1])
            if len(oneids) >= limit:
                break
    if not oneids:
        return {"redis_bytes_per_profile": -1}
    totals: list[int] = []
    states: list[int] = []
    for start in range(0, len(oneids), 500):
        pipe = client.pipeline(transaction=False)
        chunk = oneids[start:start + 500]
        for oneid in chunk:
            for key in [*store.profile_keys(oneid), graph.profile_key(oneid)]:
                pipe.memory_usage(key, samples=0)
        sizes = [n or 0 for n in pipe.execute()]
        per = len(sizes) // len(chunk)
        for i in range(len(chunk)):
            row = sizes[i * per:(i + 1) * per]
            totals.append(sum(row))
            states.append(sum(row[:-1]))
    totals.sort()
    return {
        "redis_bytes_per_profile": round(statistics.mean(totals)),
        "redis_bytes_per_profile_p50": totals[len(totals) // 2],
        "redis_bytes_per_profile_p90": totals[int(len(totals) * 0.9)],
        "redis_profile_state_bytes": round(statistics.mean(states)),
        "redis_identity_profile_bytes": round(statistics.mean(totals) - statistics.mean(states)),
        "profiles_measured": len(totals),
    }


def claim_bytes_per_event(settings: Settings, events: int) -> dict[str, float]:
    """Redis bytes the stream claims (both stages) hold per event while they are remembered."""
    client = redis.Redis.from_url(settings.redis_url)
    used = sum(client.memory_usage(key, samples=0) or 0
               for key in client.scan_iter(match=f"{settings.redis_prefix}claim:*", count=1000))
    return {"redis_claim_bytes_per_event": round(used / max(1, events), 1)}


def forget(settings: Settings) -> None:
    """Remove the run's Redis keys: a million profiles left behind would slow everything after."""
    client = redis.Redis.from_url(settings.redis_url)
    batch = []
    for key in client.scan_iter(match=f"{settings.redis_prefix}*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)


def run(settings: Settings, events: int, log_dir: Path) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    own = replace(settings, topic_prefix=f"bench-{run_id}", app_id=f"bench-{run_id}",
                  redis_prefix=f"bench:{run_id}:")
    stream = synthetic_events(events)
    results: dict[str, Any] = {"events": len(stream)}
    results.update(pipeline_rate(own, stream, log_dir))
    print(results, flush=True)
    results["baseline_consume_events_per_s"] = round(consume_rate(own, len(stream)))
    results.update(memory_per_profile(own))
    results.update(claim_bytes_per_event(own, len(stream)))
    print(results, flush=True)

    sample = stream[: min(len(stream), 20_000)]
    batched_settings = replace(own, redis_prefix=f"bench:{run_id}:b:")
    naive_settings = replace(own, redis_prefix=f"bench:{run_id}:n:")
    results["inprocess_batched_events_per_s"] = round(inprocess_rate(batched_settings, sample, 500))
    results["baseline_naive_events_per_s"] = round(inprocess_rate(naive_settings, sample[:5000], 1))

    two = replace(own, topic_prefix=f"bench-{run_id}-two", app_id=f"bench-{run_id}-two",
                  redis_prefix=f"bench:{run_id}:two:")
    results.update(pipeline_rate(two, stream[: min(len(stream), 100_000)], log_dir, workers=2))
    results["two_vs_one_worker_ratio"] = round(
        results["pipeline_2_workers_events_per_s"] / max(1, results["pipeline_events_per_s"]), 2)

    latency_settings = replace(own, topic_prefix=f"bench-{run_id}-lat", app_id=f"bench-{run_id}-lat",
                               redis_prefix=f"bench:{run_id}:lat:")
    results.update(trigger_latency(latency_settings, max(50.0, results["pipeline_events_per_s"] / 2), 30,
                                   log_dir))
    forget(own)
    results["pipeline_vs_consume_ratio"] = round(
        results["pipeline_events_per_s"] / max(1, results["baseline_consume_events_per_s"]), 3)
    results["batched_vs_naive_ratio"] = round(
        results["inprocess_batched_events_per_s"] / max(1, results["baseline_naive_events_per_s"]), 2)
    return results
