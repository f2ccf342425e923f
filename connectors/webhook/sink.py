"""The webhook sink process: triggers topic -> HTTP receivers, offsets committed after the effect.

An :class:`~streams.sinks.AsyncSink` on the shared checkpointed loop (``streams/stage_loop.py``):
a partition's records are flushed (delivered, found already delivered, or dead-lettered) and the
dead letters acknowledged by Kafka before its offsets are committed. With the done marks
written as 2xx answers arrive, a crash re-sends at most the deliveries that were in flight;
receivers can drop those too with the ``X-Touchstream-Idempotency-Key`` header.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from connectors.webhook import metrics
from connectors.webhook.batch import STAGE, BatchDelivery, BatchResult
from connectors.webhook.config import WebhookConfig, load_config
from connectors.webhook.delivery import Deliverer, Waiter, wait_for_stop
from connectors.webhook.done import DoneStore, ErasedOneIds
from connectors.webhook.exceptions import DoneStoreError, WebhookError
from schemas.codec import default_registry
from streams.clients import client_config
from streams.consumer import consumer_config as loop_consumer_config
from streams.deadletters import DeadLetter
from streams.ops_http import Check, serve_ops
from streams.records import Record
from streams.sink_loop import SinkOptions, run_sink
from streams.stage_loop import Stopped
from streams.topics import Topics
from touchstream.errors import ConfigError
from touchstream.settings import Settings

log = logging.getLogger(__name__)

USER_AGENT = "touchstream-webhook/1"
POLL_S = 0.25
#: Kafka drops a member that does not poll for this long; a batch may take its whole deadline.
MIN_POLL_INTERVAL_MS = 300_000


@dataclass
class SinkStats:
    """What one run of the sink did."""

    batches: int = 0
    triggers: int = 0
    deliveries: int = 0
    delivered: int = 0
    already_done: int = 0
    dead_letters: int = 0
    seconds: float = 0.0  # the whole run, group join and idle time included
    active_seconds: float = 0.0  # from the first batch taken to the last batch committed

    def add(self, result: BatchResult) -> None:
        self.batches += 1
        self.triggers += result.triggers
        self.deliveries += result.deliveries
        self.delivered += result.delivered
        self.already_done += result.already_done
        self.dead_letters += len(result.deadletters)

    def render(self) -> str:
        rate = self.delivered / self.active_seconds if self.active_seconds else 0.0
        return (f"{self.triggers} trigger(s) in {self.batches} batch(es): {self.delivered} delivered, "
                f"{self.already_done} already delivered, {self.dead_letters} dead-lettered; "
                f"{self.active_seconds:.2f}s busy of {self.seconds:.1f}s ({rate:.0f} deliveries/s)")


def group_id(settings: Settings) -> str:
    return f"{settings.app_id}-webhook"


def batch_bound_s(config: WebhookConfig) -> float:
    """Longest a batch can take: no attempt starts after the deadline, each lasts its timeout;
    plus a minute for Redis, dead letters and the commit."""
    return config.batch_deadline_s + max(e.timeout_s for e in config.endpoints) + 60


def poll_interval_ms(config: WebhookConfig) -> int:
    """Outlasts the longest batch, so a slow batch never costs the sink its partitions."""
    return max(MIN_POLL_INTERVAL_MS, int(batch_bound_s(config) * 1000))


def consumer_config(settings: Settings, config: WebhookConfig) -> dict[str, Any]:
    """The stage loops' consumer settings with the sink's group and poll interval."""
    return loop_consumer_config(settings.broker, group_id(settings), STAGE,
                                max_poll_interval_ms=poll_interval_ms(config))


def run_webhook_sink(settings: Settings, config_path: str | Path, *, stop_after_idle_s: float | None = None,
                     metrics_port: int | None = None, readiness: Mapping[str, Check] | None = None
                     ) -> SinkStats:
    """Deliver triggers until SIGTERM/SIGINT (or ``stop_after_idle_s`` without any); blocking.

    ``metrics_port`` serves the ops port (``/metrics``, ``/healthz``, ``/readyz`` by the
    ``readiness`` checks) on ``settings.http_host`` when set.
    """
    config = load_config(config_path)
    server = None
    if metrics_port:
        try:
            server = serve_ops(settings.http_host, metrics_port, readiness or {})
        except OSError as exc:
            raise ConfigError(f"webhook metrics port {settings.http_host}:{metrics_port} cannot be bound "
                              f"({exc.strerror}); set TOUCHSTREAM_WEBHOOK_METRICS_PORT") from None
    try:
        return _run(settings, config, stop_after_idle_s)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()


def _run(settings: Settings, config: WebhookConfig, stop_after_idle_s: float | None) -> SinkStats:
    topics = Topics.of(settings)
    _require_topic(settings.broker, topics.triggers)
    started = time.monotonic()
    sink = WebhookSink(settings, config)
    log.info("webhook sink: %s endpoint(s), group %s, topic %s", len(config.endpoints), group_id(settings),
             topics.triggers)
    run_sink(sink, SinkOptions(
        name=STAGE, broker=settings.broker, group=group_id(settings), topics=(topics.triggers,),
        deadletter_topic=topics.deadletter, batch_size=settings.batch_size, within_s=POLL_S,
        max_poll_interval_ms=poll_interval_ms(config), stop_after_idle_s=stop_after_idle_s))
    sink.stats.seconds = time.monotonic() - started
    log.info("webhook sink: %s", sink.stats.render())
    return sink.stats


class WebhookSink:
    """Deliver each partition's triggers in ``flush``; the loop produces dead letters and commits."""

    def __init__(self, settings: Settings, config: WebhookConfig, *, waiter: Waiter = wait_for_stop) -> None:
        self.settings = settings
        self.config = config
        self.stats = SinkStats()
        self.stopping = asyncio.Event()
        self._first_batch: float | None = None
        self._waiter = waiter
        self._buffers: dict[tuple[str, int], list[Record]] = defaultdict(list)
        self._stack: AsyncExitStack | None = None
        self._done: DoneStore | None = None
        self._batches: BatchDelivery | None = None

    async def open(self) -> None:
        stack = self._stack = AsyncExitStack()
        client = aioredis.Redis.from_url(self.settings.redis_url)
        stack.push_async_callback(client.aclose)
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.config.max_in_flight),
            headers={"User-Agent": USER_AGENT},
        )
        stack.push_async_callback(session.close)
        self._done = DoneStore(client, self.settings.redis_prefix, self.config.done_ttl_s)
        deliverer = Deliverer(session, self._done, stop=self.stopping, waiter=self._waiter)
        self._batches = BatchDelivery(self.config, deliverer, self._done, default_registry(),
                                      erased=ErasedOneIds(client, self.settings.redis_prefix))

    async def close(self) -> None:
        if self._stack is not None:
            await self._stack.aclose()

    def add(self, record: Record) -> None:
        if self._first_batch is None:
            self._first_batch = time.monotonic()
        self._buffers[(record.topic, record.partition)].append(record)

    def drop(self) -> None:
        self._buffers.clear()

    async def flush(self, topic: str, partition: int) -> Sequence[DeadLetter]:
        """Deliver this partition's triggers; raises ``Stopped`` when a stop left some unfinished."""
        assert self._batches is not None and self._done is not None
        messages = self._buffers.pop((topic, partition), [])
        if not messages:
            return []
        started = time.perf_counter()
        result = await self._batches.process(messages)
        while not result.marks_saved:  # the marks must be in Redis before the offsets move on
            if self.stopping.is_set():
                raise Stopped("stopping with delivered marks not saved; the batch is not committed")
            await self._waiter(self.stopping, 1.0)
            try:
                await self._done.flush()
                result.marks_saved = True
            except DoneStoreError as exc:
                log.error("webhook sink: delivered marks still not saved (%s); not committing", exc)
        if not result.complete:
            log.info("webhook sink: stopping with %s delivery(ies) unfinished; the batch is not committed",
                     result.abandoned)
            raise Stopped(f"{result.abandoned} delivery(ies) abandoned")
        self.stats.add(result)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        done = time.monotonic()
        self.stats.active_seconds = done - (self._first_batch or done)
        return result.deadletters


def _require_topic(broker: str, topic: str, timeout: float = 10.0) -> None:
    """Fail fast and say why when the triggers topic is missing (the project creates its topics)."""
    try:
        admin = AdminClient(client_config(broker))
        found = admin.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise WebhookError(f"Kafka did not answer for topic {topic}: {exc}") from None
    if found is None or found.error is not None:
        raise WebhookError(f"topic {topic} does not exist: run `touchstream topics create` first")
