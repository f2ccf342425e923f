"""A stream worker: three stage loops in threads, Prometheus /metrics, clean stop on SIGTERM.

- ``resolve``: raw -> resolved (+ merges, rejections, dead letters); every 5 s it re-sends
  merge records a crash kept from Kafka (the graph's merge outbox) and collects idle anonymous
  profiles; every 10 minutes it purges suppression entries whose window has passed.
- ``profile``: resolved -> profile state, triggers and segment changes; every second, the timed
  triggers of the partitions it holds (dwell without follow-up, inactivity, care), the segment
  members whose re-check came, and outbox re-sends.
- ``merge-profiles``: merges -> the merged person's profile state folded into the survivor's,
  and the segment changes that follow.

All loops share one consumer group (``app_id``), so more worker processes split every topic's
partitions between them. Each loop has its own producer (idempotent, acks=all) and blocks
until its outputs are acknowledged before it commits its input. What each loop does with a
batch is in ``streams/handlers.py``; this module only builds and runs them (the one place the
confluent engine is wired; a second engine would be a sibling of this module).
"""

from __future__ import annotations

import logging
import signal
import threading

import redis

from apps import factory
from schemas.codec import default_registry
from streams.consumer import consumer_config
from streams.handlers import MergeHandler, ProfileHandler, ResolveHandler, dead_letter_poison, now_ms
from streams.idle_profiles import collect_idle_profiles
from streams.observer import StageObserver
from streams.ops_http import serve_ops
from streams.outbox import GRACE_MS, RedisHeartbeats, ScanPolicy
from streams.producers import BlockingProducer, producer_config
from streams.stage_loop import BatchHandler, StageLoop, Tick
from streams.stages.merges import STAGE as MERGE_STAGE
from streams.stages.merges import MergeStage
from streams.stages.profile import ProfileStage
from streams.stages.resolve import ResolveStage
from streams.topics import Topics
from touchstream.settings import Settings

log = logging.getLogger(__name__)

PURGE_EVERY_MS = 10 * 60 * 1000


def _loop(settings: Settings, name: str, topic: str, handle: BatchHandler, producer: BlockingProducer,
          observer: StageObserver, stop: threading.Event, *, batch_size: int, tick: Tick | None = None,
          tick_every_s: float = 1.0) -> StageLoop:
    return StageLoop(name, consumer_config(settings.broker, settings.app_id, name), [topic], handle,
                     poison=dead_letter_poison(name, producer, Topics.of(settings).deadletter, observer),
                     batch_size=batch_size, within_s=settings.batch_within_ms / 1000, stop=stop, tick=tick,
                     tick_every_s=tick_every_s)


def resolve_loop(settings: Settings, client: redis.Redis, stop: threading.Event,
                 observer: StageObserver | None = None) -> StageLoop:
    topics = Topics.of(settings)
    observer = observer or StageObserver()
    graph = factory.identity_graph(settings, client)
    store = factory.profile_store(settings, client)
    stage = ResolveStage(client=client, graph=graph, registry=default_registry(),
                         prefix=settings.redis_prefix, raw_topic=topics.raw,
                         dedup_window_s=settings.stream_dedup_window_s,
                         event_time_skew_ms=settings.event_time_skew_s * 1000)
    producer = BlockingProducer(producer_config(settings.broker))

    purged_at = [0]

    def collect_idle() -> None:
        if settings.anonymous_profile_ttl_s:
            collect_idle_profiles(graph, store, now_ms(), settings.anonymous_profile_ttl_s * 1000)
        if now_ms() - purged_at[0] >= PURGE_EVERY_MS:  # erased people's hashes leave after their window
            purged_at[0] = now_ms()
            graph.purge_suppressions()

    scans = ScanPolicy(RedisHeartbeats(client, settings.redis_prefix, "resolve"), GRACE_MS)
    handle = ResolveHandler(stage, producer, topics, observer, collect_idle=collect_idle, scans=scans)
    return _loop(settings, "resolve", topics.raw, handle, producer, observer, stop,
                 batch_size=settings.batch_size, tick=handle.tick, tick_every_s=5.0)


def profile_loops(settings: Settings, client: redis.Redis, stop: threading.Event,
                  observer: StageObserver | None = None) -> list[StageLoop]:
    topics = Topics.of(settings)
    observer = observer or StageObserver()
    registry = default_registry()
    store = factory.profile_store(settings, client)
    stage = ProfileStage(client=client, store=store, registry=registry, prefix=settings.redis_prefix,
                         resolved_topic=topics.resolved, dedup_window_s=settings.stream_dedup_window_s)
    producer = BlockingProducer(producer_config(settings.broker))
    scans = ScanPolicy(RedisHeartbeats(client, settings.redis_prefix, "profile"), GRACE_MS)
    profile = ProfileHandler(stage, producer, topics, observer, scans=scans)
    merge = MergeHandler(MergeStage(store=store, registry=registry, merges_topic=topics.merges, client=client,
                                    prefix=settings.redis_prefix), producer, topics, observer)
    return [
        _loop(settings, "profile", topics.resolved, profile, producer, observer, stop,
              batch_size=settings.batch_size, tick=profile.tick),
        _loop(settings, MERGE_STAGE, topics.merges, merge, producer, observer, stop, batch_size=100),
    ]


def run_worker(settings: Settings) -> None:
    """Run one worker until SIGTERM/SIGINT (``touchstream worker``); exit 1 if a loop dies."""
    stop = threading.Event()
    client = factory.redis_client(settings)
    observer = StageObserver()
    loops = [resolve_loop(settings, client, stop, observer), *profile_loops(settings, client, stop, observer)]
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
    ops = serve_ops(settings.http_host, settings.worker_web_port, factory.readiness_checks(settings, client))
    threads = [threading.Thread(target=guarded, args=(loop,), name=loop.name) for loop in loops]
    for thread in threads:
        thread.start()
    log.info("worker %s running: %s", settings.app_id, ", ".join(loop.name for loop in loops))
    while not stop.wait(0.5):
        pass
    for thread in threads:
        thread.join(30)
    ops.shutdown()
    if failed.is_set():
        raise SystemExit(1)
