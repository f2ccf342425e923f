"""Idempotent, acks=all producers: a blocking one per stage loop, an asyncio one for the edge and sinks.

Outputs are committed-after-acknowledged everywhere, so both faces resolve only when the broker
acknowledged every message handed to them. The collector answers 200 only after the broker
acknowledged every message of the request, so ``AsyncProducer.send_all`` resolves when the last
delivery report of its batch arrived. Delivery reports are served by one polling thread; each
request waits on one future, not one per message.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence

from confluent_kafka import KafkaError, KafkaException, Producer

from streams.clients import client_config

log = logging.getLogger(__name__)


def producer_config(broker: str, **extra: object) -> dict[str, object]:
    """Idempotent, acks=all: no acknowledged-but-lost event and no broker-side duplicates."""
    settings: dict[str, object] = {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.num.messages": 10000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 500_000,
        "message.timeout.ms": 30_000,
    }
    config = client_config(broker, **settings)
    config.update(extra)
    return config


class DeliveryFailed(KafkaException):
    """At least one message of a batch was not acknowledged by the broker."""


class _Batch:
    """Counts down the delivery reports of one send_all call."""

    __slots__ = ("error", "future", "loop", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop, pending: int) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()
        self.pending = pending
        self.error: KafkaError | None = None

    def report(self, err: KafkaError | None, _msg: object) -> None:  # producer thread
        if err is not None and self.error is None:
            self.error = err
        self.pending -= 1
        if self.pending == 0:
            self.loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        if self.future.done():
            return
        if self.error is not None:
            self.future.set_exception(DeliveryFailed(self.error))
        else:
            self.future.set_result(None)


class AsyncProducer:
    """Produce batches from asyncio code and await their acknowledgement."""

    def __init__(self, config: dict[str, object]) -> None:
        self._producer = Producer(config)
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._poll_loop, name="kafka-delivery", daemon=True)
        self._thread.start()

    def _poll_loop(self) -> None:
        while not self._closing.is_set():
            self._producer.poll(0.05)

    async def send_all(self, topic: str, items: Sequence[tuple[bytes | None, bytes]]) -> None:
        """Produce every (key, value) and return once the broker acknowledged all of them."""
        if not items:
            return
        batch = _Batch(asyncio.get_running_loop(), len(items))
        for key, value in items:
            while True:
                try:
                    self._producer.produce(topic, value, key, on_delivery=batch.report)
                    break
                except BufferError:
                    await asyncio.sleep(0.005)  # local queue full: let the poll thread drain it
        await batch.future

    def flush(self, timeout: float = 30.0) -> int:
        return self._producer.flush(timeout)

    def close(self, timeout: float = 30.0) -> None:
        remaining = self._producer.flush(timeout)
        self._closing.set()
        self._thread.join(timeout=2)
        if remaining:
            log.error("producer closed with %s undelivered messages", remaining)


class BlockingProducer:
    """Produce batches from one thread and block until the broker acknowledged all of them.

    A stage loop owns one: ``flush`` then waits only for that loop's own messages, so a loop
    never commits its input before its outputs are safe, and never waits on another loop's.
    """

    def __init__(self, config: dict[str, object]) -> None:
        self._producer = Producer(config)
        self._error: KafkaError | None = None

    def _report(self, err: KafkaError | None, _msg: object) -> None:
        if err is not None and self._error is None:
            self._error = err

    def send_all(self, batches: dict[str, Sequence[tuple[bytes | None, bytes]]],
                 timeout: float = 30.0) -> None:
        """Produce every (key, value) of every topic; return once all are acknowledged.

        Raises :class:`DeliveryFailed` if any message was refused or not acknowledged in time
        (the caller retries the whole batch: its consumers deduplicate by idempotency key).
        """
        self._error = None
        produce, poll = self._producer.produce, self._producer.poll
        for topic, items in batches.items():
            for key, value in items:
                while True:
                    try:
                        produce(topic, value, key, on_delivery=self._report)
                        break
                    except BufferError:
                        poll(0.005)  # local queue full: serve delivery reports to drain it
        remaining = self._producer.flush(timeout)
        if remaining:
            raise DeliveryFailed(KafkaError(KafkaError._MSG_TIMED_OUT,
                                            f"{remaining} message(s) not acknowledged"))
        if self._error is not None:
            raise DeliveryFailed(self._error)
