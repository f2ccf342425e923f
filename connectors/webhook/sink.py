"""The webhook sink process: triggers topic -> HTTP receivers, offsets committed after the effect.

A batch's offsets are committed only after each of its triggers was delivered, found already
delivered, or dead-lettered (and the dead letters acknowledged by Kafka). With the done marks
written as 2xx answers arrive, a crash re-sends at most the deliveries that were in flight;
receivers can drop those too with the ``X-Touchstream-Idempotency-Key`` header.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from confluent_kafka import Consumer, KafkaException, TopicPartition

from connectors.producer import AsyncProducer, producer_config
from connectors.webhook import metrics
from connectors.webhook.batch import BatchDelivery, BatchResult, TriggerMessage
from connectors.webhook.config import WebhookConfig, load_config
from connectors.webhook.delivery import Deliverer
from connectors.webhook.done import DoneStore
from connectors.webhook.exceptions import DoneStoreError, WebhookError
from schemas.codec import default_registry
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


def consumer_config(settings: Settings, config: WebhookConfig) -> dict[str, Any]:
    """Manual commits from the earliest offset; the poll interval outlasts the longest batch, so
    a slow batch never costs the sink its partitions."""
    return {
        "bootstrap.servers": settings.broker,
        "group.id": group_id(settings),
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "max.poll.interval.ms": max(MIN_POLL_INTERVAL_MS, int(batch_bound_s(config) * 1000)),
    }


def run_webhook_sink(settings: Settings, config_path: str | Path, *, stop_after_idle_s: float | None = None,
                     metrics_port: int | None = None) -> SinkStats:
    """Deliver triggers until SIGTERM/SIGINT (or ``stop_after_idle_s`` without any); blocking.

    ``metrics_port`` serves Prometheus ``/metrics`` on ``settings.http_host`` when set.
    """
    config = load_config(config_path)
    server = None
    if metrics_port:
        from prometheus_client import start_http_server

        try:
            server, _ = start_http_server(metrics_port, addr=settings.http_host)
        except OSError as exc:
            raise ConfigError(f"webhook metrics port {settings.http_host}:{metrics_port} cannot be bound "
                              f"({exc.strerror}); set TOUCHSTREAM_WEBHOOK_METRICS_PORT") from None
    try:
        return asyncio.run(WebhookSink(settings, config).run(stop_after_idle_s=stop_after_idle_s))
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()


class WebhookSink:
    """The consume -> deliver -> dead-letter -> commit loop."""

    def __init__(self, settings: Settings, config: WebhookConfig) -> None:
        self.settings = settings
        self.config = config
        self.topics = Topics.of(settings)
        self.stats = SinkStats()
        self._assigned = threading.Event()

    async def run(self, *, stop_after_idle_s: float | None = None) -> SinkStats:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        async with AsyncExitStack() as stack:
            stack.callback(_install_stop_signals(stop))
            kafka = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-consumer")
            stack.callback(kafka.shutdown)
            producer = AsyncProducer(producer_config(self.settings.broker))
            stack.callback(producer.close)
            consumer = Consumer(consumer_config(self.settings, self.config))
            stack.push_async_callback(loop.run_in_executor, kafka, consumer.close)
            client = aioredis.Redis.from_url(self.settings.redis_url)
            stack.push_async_callback(client.aclose)
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.config.max_in_flight),
                headers={"User-Agent": USER_AGENT},
            )
            stack.push_async_callback(session.close)
            done = DoneStore(client, self.settings.redis_prefix, self.config.done_ttl_s)
            deliverer = Deliverer(session, done, stop=stop)
            batches = BatchDelivery(self.config, deliverer, done, default_registry())

            await loop.run_in_executor(kafka, _require_topic, consumer, self.topics.triggers)
            consumer.subscribe([self.topics.triggers], on_assign=self._on_assign)
            log.info("webhook sink: %s endpoint(s), group %s, topic %s", len(self.config.endpoints),
                     group_id(self.settings), self.topics.triggers)
            idle_since = time.monotonic()
            first_batch: float | None = None
            while not stop.is_set():
                messages = await loop.run_in_executor(kafka, self._poll, consumer)
                if not messages:
                    if not self._assigned.is_set():
                        idle_since = time.monotonic()
                    elif stop_after_idle_s is not None and time.monotonic() - idle_since >= stop_after_idle_s:
                        log.info("webhook sink: idle for %.1fs, stopping", stop_after_idle_s)
                        break
                    continue
                first_batch = first_batch or time.monotonic()
                if not await self._handle(messages, batches, done, producer, consumer, kafka, stop):
                    break
                idle_since = time.monotonic()
                self.stats.active_seconds = idle_since - first_batch
        self.stats.seconds = time.monotonic() - started
        log.info("webhook sink: %s", self.stats.render())
        return self.stats

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned.set()
        log.info("webhook sink: assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))

    def _poll(self, consumer: Consumer) -> list[TriggerMessage]:
        out: list[TriggerMessage] = []
        for msg in consumer.consume(self.settings.batch_size, POLL_S):
            error = msg.error()
            if error is not None:
                log.warning("webhook sink: consumer error %s", error)
                continue
            out.append(TriggerMessage(msg.topic(), msg.partition(), msg.offset(), msg.key(),
                                      msg.value() or b""))
        return out

    async def _handle(self, messages: list[TriggerMessage], batches: BatchDelivery, done: DoneStore,
                      producer: AsyncProducer, consumer: Consumer, kafka: ThreadPoolExecutor,
                      stop: asyncio.Event) -> bool:
        """Process one batch and commit it; False when stopping left it unfinished (not committed)."""
        started = time.perf_counter()
        result = await batches.process(messages)
        while not result.marks_saved:  # the marks must be in Redis before the offsets move on
            if stop.is_set():
                return False
            await asyncio.sleep(1.0)
            try:
                await done.flush()
                result.marks_saved = True
            except DoneStoreError as exc:
                log.error("webhook sink: delivered marks still not saved (%s); not committing", exc)
        if not result.complete:
            log.info("webhook sink: stopping with %s delivery(ies) unfinished; the batch is not committed",
                     result.abandoned)
            return False
        await producer.send_all(self.topics.deadletter, result.deadletters)
        await asyncio.get_running_loop().run_in_executor(kafka, _commit, consumer, messages)
        self.stats.add(result)
        metrics.BATCH_SECONDS.observe(time.perf_counter() - started)
        return True


def _require_topic(consumer: Consumer, topic: str, timeout: float = 10.0) -> None:
    """Fail fast and say why when the triggers topic is missing (the project creates its topics)."""
    try:
        found = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
    except KafkaException as exc:
        raise WebhookError(f"Kafka did not answer for topic {topic}: {exc}") from None
    if found is None or found.error is not None:
        raise WebhookError(f"topic {topic} does not exist: run `touchstream topics create` first")


def _commit(consumer: Consumer, messages: Sequence[TriggerMessage]) -> None:
    """Commit past the last message of each partition of the batch (synchronously)."""
    ends: dict[tuple[str, int], int] = {}
    for msg in messages:
        position = (msg.topic, msg.partition)
        ends[position] = max(ends.get(position, -1), msg.offset + 1)
    try:
        consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in ends.items()], asynchronous=False)
    except KafkaException as exc:  # e.g. a rebalance took the partitions: the done marks cover replays
        log.warning("webhook sink: commit failed (%s); the next owner re-reads, done marks skip", exc)


def _install_stop_signals(stop: asyncio.Event) -> Callable[[], None]:
    """SIGTERM/SIGINT set ``stop`` (main thread only); returns a function that restores the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        loop.add_signal_handler(sig, stop.set)

    def restore() -> None:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)

    return restore
