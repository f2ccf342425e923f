"""`make chaos`: a stream under faults. Not part of `make test`: it restarts the shared stack.

While events arrive, the worker and the lake sink are SIGKILLed three times each, Redis is
restarted once (from its AOF) and Kafka once. Afterwards: every accepted event came out of
resolution, every aggregate equals a recount, no trigger was emitted twice, the lake holds
every record of its topics exactly once, and `verify` finds every live profile equal to what the
lake's history says (aggregates, tags, score, tier). Prints what it verified; fails otherwise.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition

from analytics.history import Report, verify
from apps import factory
from connectors.ingest import partition_key
from connectors.lake.query import connect
from connectors.lake.rows import TABLES
from identity.synthetic import generate, squeeze
from schemas.codec import default_registry
from schemas.testing import anonymous_page
from streams.topics import Topics, create_topics
from tests.integration.conftest import (
    TopicReader,
    WorkerProcess,
    assert_aggregates_equal_recount,
    free_port,
    wait_caught_up,
    wait_merges_acknowledged,
    wait_triggers_acknowledged,
)
from tests.integration.lake_helpers import LakeProcess, rows, wait_committed
from touchstream.settings import Settings


def _stream(count_persons: int) -> list[dict]:
    events, _ = generate(count_persons, seed=21)
    start = int(time.time() * 1000) - 30 * 60_000
    out = squeeze(events, start, 20 * 60_000)
    for i in range(100):  # dwell triggers that must fire exactly once each
        anon = f"chaos-dwell-{i}"
        for n, (path, at) in enumerate((("/pricing", 0), ("/docs", 200_000))):
            out.append(anonymous_page(anon, path, start + i * 5_000 + at, message_id=f"{anon}-{n}"))
    return out


def test_kills_and_restarts_lose_nothing_and_repeat_nothing(stack, settings, tmp_path):
    own = replace(settings, topic_prefix=settings.topic_prefix + "-chaos", app_id=settings.app_id + "-chaos",
                  redis_prefix=settings.redis_prefix + "chaos:", batch_size=200)
    create_topics(own)
    registry = default_registry()
    events = _stream(400)
    produced = threading.Event()

    def produce_slowly() -> None:
        producer = Producer({"bootstrap.servers": own.broker, "enable.idempotence": True, "acks": "all"})
        for i, event in enumerate(events):
            producer.produce(Topics.of(own).raw, registry.encode("event", event), partition_key(event))
            if i % 200 == 0:
                producer.poll(0)
                time.sleep(0.1)  # ~2,000 events/s: the faults land mid-stream
        assert producer.flush(120) == 0
        produced.set()

    feeder = threading.Thread(target=produce_slowly)
    feeder.start()
    worker = WorkerProcess(own, tmp_path / "worker.log", free_port()).start()
    lake = replace(own, lake_path=str(tmp_path / "lake"), lake_metrics_port=0, lake_roll_s=2,
                   lake_batch_size=500)
    sink = LakeProcess(lake, tmp_path / "lake.log").start()
    verified = []
    try:
        for n in range(3):
            time.sleep(2.5)
            worker.kill()
            verified.append(f"worker SIGKILLed ({n + 1}/3)")
            worker.start()
            time.sleep(1.0)  # the lake sink dies at another moment of the stream
            sink.kill()
            verified.append(f"lake sink SIGKILLed ({n + 1}/3)")
            sink.start()
        time.sleep(2)
        stack.restart_redis()
        verified.append("Redis restarted from its AOF")
        time.sleep(2)
        stack.restart_kafka()
        verified.append("Kafka restarted")
        feeder.join(300)
        assert produced.is_set(), "the producer did not finish"
        wait_caught_up(own, Topics.of(own).raw, timeout=300)
        wait_caught_up(own, Topics.of(own).resolved, timeout=300)
        wait_merges_acknowledged(own)
        wait_caught_up(own, Topics.of(own).merges, timeout=120)
        time.sleep(3)  # one more sweep for timed triggers
        wait_triggers_acknowledged(own)  # a trigger a kill left in the outbox is re-sent, not lost
        wait_committed(lake, f"{lake.app_id}-lake", timeout=300)
        assert sink.stop() == 0, (tmp_path / "lake.log").read_text()[-3000:]
    finally:
        worker.stop()
        sink.stop()

    resolved = TopicReader(own, Topics.of(own).resolved, "event")
    dead = TopicReader(own, Topics.of(own).deadletter, "deadletter")
    try:
        records = resolved.until(lambda rs: False, 10)
        letters = dead.until(lambda d: False, 3)
    finally:
        resolved.close()
        dead.close()
    out_ids = {r["message_id"] for r in records} | {
        registry.decode(d["original"])[1]["message_id"] for d in letters}
    missing = {e["message_id"] for e in events} - out_ids
    assert not missing, f"{len(missing)} accepted events never came out of resolution"
    verified.append(f"all {len(events)} events resolved or dead-lettered ({len(letters)} unresolvable)")

    pages, orders = assert_aggregates_equal_recount(own, records)
    verified.append(f"page views of {pages} and orders of {orders} profiles equal a recount")

    triggers = TopicReader(own, Topics.of(own).triggers, "trigger")
    try:
        fired = triggers.until(lambda rs: False, 5)
    finally:
        triggers.close()
    keys = Counter((t["oneid"], t["idempotency_key"]) for t in fired)
    twice = [k for k, n in keys.items() if n > 1]
    dwell = {t["message_id"] for t in fired if t["rule"] == "pricing_dwell"
             and (t["message_id"] or "").startswith("chaos-dwell-")}
    assert len(dwell) == 100, f"{100 - len(dwell)} dwell triggers lost"
    assert not twice, f"{len(twice)} triggers emitted twice: {twice[:3]}"
    verified.append(f"{len(fired)} triggers, none twice; all 100 planted dwell triggers fired")

    held = assert_lake_holds_every_record_once(lake, tmp_path / "lake")
    lake_ids = {r["message_id"] for r in rows(tmp_path / "lake", "events", ["message_id"])}
    assert lake_ids == {r["message_id"] for r in records}, "lake and resolved topic hold other events"
    verified.append("the lake holds every record of its topics once (" +
                    ", ".join(f"{n} {table}" for table, n in held.items()) + ")")

    report = live_against_history(own, tmp_path / "lake")
    assert report.ok, report.render_table()[-6000:]
    assert report.profiles > 0 and 0 < report.events <= len(lake_ids), report.summary()  # late ones left out
    verified.append(f"live equals history: {report.summary()}")
    print("\nchaos verified:\n  " + "\n  ".join(verified))


def assert_lake_holds_every_record_once(settings: Settings, root: Path) -> dict[str, int]:
    """Per lake table: its rows' (partition, offset) are exactly the records on its topic."""
    consumer = Consumer({"bootstrap.servers": settings.broker, "group.id": f"chaos-{uuid.uuid4().hex}"})
    held: dict[str, int] = {}
    try:
        for spec in TABLES:
            topic = f"{settings.topic_prefix}.{spec.topic_suffix}"
            partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
            marks = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                     for p in partitions}
            expected = sorted((p, o) for p, (low, high) in marks.items() for o in range(low, high))
            found = sorted((r["_partition"], r["_offset"])
                           for r in rows(root, spec.name, ["_partition", "_offset"]))
            twice = [pos for pos, n in Counter(found).items() if n > 1]
            assert not twice, f"{spec.name}: {len(twice)} records twice in the lake, e.g. {twice[:3]}"
            missing = len(set(expected) - set(found))
            assert found == expected, f"{spec.name}: {missing} records missing from the lake"
            held[spec.name] = len(found)
    finally:
        consumer.close()
    return held


def live_against_history(settings: Settings, root: Path) -> Report:
    """`touchstream verify` as `make demo` runs it: every live profile against the lake's history,
    now (the worker and the lake have caught up; nothing is in flight)."""
    store = factory.profile_store(settings, factory.redis_client(settings))
    return verify(connect(root), store.ruleset.current(), store.get_profiles, int(time.time() * 1000),
                  skew_ms=settings.event_time_skew_s * 1000)
