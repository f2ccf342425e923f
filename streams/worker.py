"""A stream worker: three stage loops in threads, Prometheus /metrics, clean stop on SIGTERM.

- ``resolve``: raw -> resolved (+ merges, rejections, dead letters); every 5 s it re-sends
  merge records a crash kept from Kafka (the graph's merge outbox).
- ``profile``: resolved -> profile state and triggers; every second, the timed triggers of the
  partitions it holds (dwell without follow-up, inactivity, care) and trigger-outbox re-sends.
- ``merge-profiles``: merges -> the merged person's profile state folded into the survivor's.

All loops share one consumer group (``app_id``), so more worker processes split every topic's
partitions between them. Each loop has its own producer (idempotent, acks=all) and blocks
until its outputs are acknowledged before it commits its input.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Sequence

import redis
from prometheus_client import start_http_server

from connectors.deadletter import dead_letter
from connectors.producer import BlockingProducer, producer_config
from identity.graph import IdentityGraph
from profiles.store import ProfileStore
from schemas.codec import default_registry
from schemas.exceptions import DecodeError
from streams.failures import describe
from streams.idle_profiles import collect_idle_profiles
from streams.stage_loop import PoisonHandler, StageLoop, consumer_config
from streams.stages.profile import ProfileStage
from streams.stages.resolve import RawRecord, ResolveStage
from streams.topics import Topics
from touchstream.rules import identity_rules, profile_rules
from touchstream.settings import Settings

log = logging.getLogger(__name__)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def profile_store(settings: Settings, client: redis.Redis) -> ProfileStore:
    """The profile store with the configured rules and bounds."""
    return ProfileStore(client, settings.redis_prefix, profile_rules(settings),
                        event_time_skew_ms=settings.event_time_skew_s * 1000,
                        max_traits_per_profile=settings.max_traits_per_profile)


def dead_letter_poison(stage: str, producer: BlockingProducer, deadletter_topic: str) -> PoisonHandler:
    """Write a record that failed alone to the dead-letter topic (reason ``processing_error``)."""
    encode = default_registry().encoder("deadletter")

    def poison(record: RawRecord, error: BaseException) -> None:
        letter = dead_letter(stage, "processing_error", describe(error), original=record.value,
                             topic=record.topic, partition=record.partition, offset=record.offset,
                             key=record.key)
        producer.send_all({deadletter_topic: [(record.key, encode(letter))]})

    return poison


def resolve_loop(settings: Settings, client: redis.Redis, stop: threading.Event) -> StageLoop:
    topics = Topics.of(settings)
    registry = default_registry()
    graph = IdentityGraph(client, settings.redis_prefix, identity_rules(settings),
                          max_identifiers_per_event=settings.max_identifiers_per_event)
    store = profile_store(settings, client)
    stage = ResolveStage(client=client, graph=graph, registry=registry, prefix=settings.redis_prefix,
                         raw_topic=topics.raw, dedup_window_s=settings.stream_dedup_window_s,
                         event_time_skew_ms=settings.event_time_skew_s * 1000)
    producer = BlockingProducer(producer_config(settings.broker))

    def handle(batch: Sequence[RawRecord]) -> None:
        out = stage.process(batch)
        producer.send_all({topics.resolved: out.resolved, topics.merges: out.merges,
                           topics.rejections: out.rejections, topics.deadletter: out.deadletters})
        if out.merged_ids:
            stage.merges_acknowledged(out.merged_ids)

    def resend_merges_and_collect(_partitions: Sequence[int]) -> None:
        merged, records = stage.stale_merges(time.time())
        if records:
            producer.send_all({topics.merges: records})
            stage.merges_acknowledged(merged)
        if settings.anonymous_profile_ttl_s:
            collect_idle_profiles(graph, store, _now_ms(), settings.anonymous_profile_ttl_s * 1000)

    return StageLoop("resolve", consumer_config(settings.broker, settings.app_id, "resolve"), [topics.raw],
                     handle, poison=dead_letter_poison("resolve", producer, topics.deadletter),
                     batch_size=settings.batch_size, within_s=settings.batch_within_ms / 1000,
                     stop=stop, tick=resend_merges_and_collect, tick_every_s=5.0)


def profile_loops(settings: Settings, client: redis.Redis, stop: threading.Event) -> list[StageLoop]:
    topics = Topics.of(settings)
    registry = default_registry()
    store = profile_store(settings, client)
    stage = ProfileStage(client=client, store=store, registry=registry, prefix=settings.redis_prefix,
                         resolved_topic=topics.resolved, dedup_window_s=settings.stream_dedup_window_s)
    producer = BlockingProducer(producer_config(settings.broker))
    decode_merge = registry.decoder("identity_merge")
    encode_deadletter = registry.encoder("deadletter")

    def emit(triggers: Sequence[dict], deadletters: Sequence[tuple[bytes | None, bytes]] = ()) -> None:
        if triggers or deadletters:
            producer.send_all({topics.triggers: [stage.encode(t) for t in triggers],
                               topics.deadletter: deadletters})
            stage.sent(triggers)

    def handle(batch: Sequence[RawRecord]) -> None:
        out = stage.process(batch, _now_ms())
        emit(out.triggers, out.deadletters)

    def sweep(partitions: Sequence[int]) -> None:
        """Timed triggers (dwell without follow-up, inactivity, post-purchase care) by the clock."""
        if not partitions:
            return
        now = _now_ms()
        emit(stage.sweep(now, partitions) + stage.resend_stale(now))

    def merge(batch: Sequence[RawRecord]) -> None:
        pairs, letters = [], []
        for record in batch:
            try:
                merged = decode_merge(record.value)
            except DecodeError as exc:  # one bad record must not stall the loop: dead-letter it
                letter = dead_letter("merge-profiles", "avro_decode", str(exc), original=record.value,
                                     topic=topics.merges, partition=record.partition, offset=record.offset,
                                     key=record.key)
                letters.append((record.key, encode_deadletter(letter)))
                continue
            pairs.append((merged["survivor"], merged["merged"]))
        store.merge_many(pairs)
        if letters:
            producer.send_all({topics.deadletter: letters})

    within_s = settings.batch_within_ms / 1000
    return [
        StageLoop("profile", consumer_config(settings.broker, settings.app_id, "profile"), [topics.resolved],
                  handle, poison=dead_letter_poison("profile", producer, topics.deadletter),
                  batch_size=settings.batch_size, within_s=within_s, stop=stop, tick=sweep),
        StageLoop("merge-profiles", consumer_config(settings.broker, settings.app_id, "merge-profiles"),
                  [topics.merges], merge,
                  poison=dead_letter_poison("merge-profiles", producer, topics.deadletter),
                  batch_size=100, within_s=within_s, stop=stop),
    ]


def run_worker(settings: Settings) -> None:
    """Run one worker until SIGTERM/SIGINT (``touchstream worker``); exit 1 if a loop dies."""
    stop = threading.Event()
    client = redis.Redis.from_url(settings.redis_url)
    loops = [resolve_loop(settings, client, stop), *profile_loops(settings, client, stop)]
    failed = threading.Event()

    def guarded(loop: StageLoop) -> None:
        try:
            loop.run()
        except Exception:
            log.exception("%s: loop died; stopping the worker", loop.name)
            failed.set()
            stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    start_http_server(settings.worker_web_port, addr=settings.http_host)
    threads = [threading.Thread(target=guarded, args=(loop,), name=loop.name) for loop in loops]
    for thread in threads:
        thread.start()
    log.info("worker %s running: %s", settings.app_id, ", ".join(loop.name for loop in loops))
    while not stop.wait(0.5):
        pass
    for thread in threads:
        thread.join(30)
    if failed.is_set():
        raise SystemExit(1)
