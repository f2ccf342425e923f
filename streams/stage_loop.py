"""The one loop every pipeline stage runs: take a batch, process it, commit.

A stage loop is one thread with its own confluent-kafka consumer (and, in its handler, its own
producer). Offsets are committed only after the batch's effects are in Redis and its outputs
acknowledged by Kafka, so a SIGKILL anywhere costs a replay, nothing else.

Failures are split in two (``streams/failures.py``):

- Redis or Kafka unavailable: the same batch is retried with backoff until it succeeds. While it
  waits the loop keeps polling with its partitions paused, so it stays in the group (no
  eviction churn) and serves rebalances.
- Anything else is a data error: a public write key can send anything. The batch is bisected
  until the failing record is alone; that record becomes a dead letter (reason
  ``processing_error``, the exception, its position and original bytes) and everything else is
  processed, in order, effectively once (every stage's effects are idempotent under replay).

Why not Faust agents: the same two stages ran at 363 µs of worker CPU per event under Faust
and aiokafka against 145 µs in process (a bare confluent-kafka consumer costs ~2.5 µs per
record); the per-message Event, ack and offset bookkeeping was most of the worker's time.

Rebalances are served inside ``consume``, which this loop only calls between batches (and while
waiting out an outage). A commit the coordinator refuses meanwhile stays pending and is sent
again (see ``_commit``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from streams.consumer import MAX_POLL_INTERVAL_MS, consumer_config
from streams.failures import describe, is_infrastructure
from streams.records import Record
from touchstream import metrics

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[Record]], None]
Tick = Callable[[Sequence[int]], None]
#: Dead-letters one record that failed alone with a data error; returns once Kafka acknowledged.
PoisonHandler = Callable[[Record, BaseException], None]

__all__ = ["MAX_POLL_INTERVAL_MS", "BatchHandler", "PoisonHandler", "StageLoop", "Stopped", "Tick",
           "consumer_config"]


class Stopped(Exception):
    """The worker was stopped while a batch waited: it is not committed, the next owner replays.

    A handler raises it too when a stop request left its batch unfinished (a sink abandoning
    deliveries): the loop ends without committing the batch.
    """



class StageLoop:
    """Consume ``topics`` in batches and hand each to ``handle``; isolate records that fail.

    ``poison`` dead-letters a record that fails alone with a data error. ``tick`` runs every
    ``tick_every_s`` between batches with the partitions this loop holds (timed triggers,
    outbox re-sends); a failing tick is logged and tried again next time.
    """

    def __init__(self, name: str, config: dict[str, object], topics: Sequence[str], handle: BatchHandler, *,
                 poison: PoisonHandler, batch_size: int, within_s: float, stop: threading.Event,
                 tick: Tick | None = None, tick_every_s: float = 1.0, max_backoff_s: float = 5.0) -> None:
        self.name = name
        self._config = config
        self._topics = list(topics)
        self._handle = handle
        self._poison = poison
        self._consumer: Consumer | None = None
        self._paused = False
        self._held: list[Message] = []  # records polled while waiting out an outage
        self._batch_size = batch_size
        self._within_s = within_s
        self._stop = stop
        self._tick = tick
        self._tick_every_s = tick_every_s
        self._max_backoff_s = max_backoff_s
        self._assigned: set[tuple[str, int]] = set()
        # processed but not yet acknowledged by the group coordinator: next offset per partition
        self._uncommitted: dict[tuple[str, int], int] = {}
        self._last_commit = 0.0

    # -- rebalance callbacks (served inside consume, between batches) ---------------------------

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned.update((tp.topic, tp.partition) for tp in partitions)
        log.info("%s: assigned %s", self.name, sorted(self._assigned))

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._assigned.difference_update((tp.topic, tp.partition) for tp in partitions)
        for tp in partitions:  # another worker replays from the last commit and reports these now
            self._uncommitted.pop((tp.topic, tp.partition), None)
            with contextlib.suppress(KeyError):
                metrics.CONSUMER_LAG.remove(self.name, tp.topic, str(tp.partition))

    def partitions(self, topic: str) -> list[int]:
        return sorted(p for t, p in self._assigned if t == topic)

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> None:
        consumer = self._consumer = Consumer({**self._config, "on_commit": self._on_commit})
        consumer.subscribe(self._topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                           on_lost=self._on_revoke)
        next_tick = time.monotonic() + self._tick_every_s
        try:
            last_poll = metrics.STAGE_LAST_POLL.labels(self.name)
            while not self._stop.is_set():
                last_poll.set_to_current_time()
                messages = consumer.consume(self._batch_size, self._within_s)
                if self._held:
                    messages, self._held = self._held + messages, []
                batch, offsets = self._records(messages)
                if batch and not self._process_until_done(batch):
                    break  # stopped while a failing batch waited: not committed, so replayed
                if offsets:
                    self._uncommitted.update(((tp.topic, tp.partition), tp.offset) for tp in offsets)
                    self._commit(consumer)
                    self._report_lag(consumer, offsets)
                elif self._uncommitted and time.monotonic() - self._last_commit >= 1.0:
                    self._commit(consumer)  # a commit refused mid-rebalance: try again
                if self._tick is not None and time.monotonic() >= next_tick:
                    self._tick_safely()
                    next_tick = time.monotonic() + self._tick_every_s
            self._commit(consumer, wait=True)  # a clean stop leaves nothing to replay
        finally:
            consumer.close()  # leaves the group at once: the partitions move without a timeout

    def _commit(self, consumer: Consumer, wait: bool = False) -> None:
        """Commit every processed position this loop still holds.

        A commit the coordinator refuses during a rebalance (ILLEGAL_GENERATION,
        REBALANCE_IN_PROGRESS) stays in ``_uncommitted`` and is sent again: with cooperative
        rebalancing a consumer keeps most partitions, so nobody would replay that batch, and a
        partition that gets no new record would otherwise stay behind its processed position
        (seen as a benchmark waiting forever for the group to catch up).
        """
        offsets = [TopicPartition(t, p, o) for (t, p), o in self._uncommitted.items()
                   if (t, p) in self._assigned]
        if not offsets:
            return
        self._last_commit = time.monotonic()
        if not wait:
            consumer.commit(offsets=offsets, asynchronous=True)
            return
        try:
            self._committed(consumer.commit(offsets=offsets, asynchronous=False))
        except KafkaException as exc:
            log.info("%s: final commit not taken (%s); the next owner replays", self.name, exc)

    def _records(self, messages: list[Any]) -> tuple[list[Record], list[TopicPartition]]:
        # Any, not Message: its getters are Optional in the stubs, yet a message without an error
        # has them all, and this loop runs per record (no casts on the hot path)
        # (comprehensions, each getter called once: this was a fifth of the lake sink's time)
        batch = [Record(m.partition(), m.offset(), m.key(), m.value(), m.topic())
                 for m in messages if m.error() is None]
        if len(batch) != len(messages):
            for message in messages:
                error = message.error()
                if error is None:
                    continue
                if error.fatal():
                    raise KafkaException(error)
                if error.code() != KafkaError._PARTITION_EOF:
                    log.warning("%s: consumer error: %s", self.name, error)
        ends = {(r.topic, r.partition): r.offset + 1 for r in batch}  # the last record of each wins
        return batch, [TopicPartition(t, p, o) for (t, p), o in ends.items()]

    def _process_until_done(self, batch: list[Record]) -> bool:
        """True once every record was processed or dead-lettered; False if stopped first.

        A data error splits the failing part in two, left half first, so records keep their
        order and only the record that fails alone is dead-lettered. Effects of the parts that
        succeeded are kept; a part that fails is replayed, which every stage's effects absorb.
        """
        started = time.perf_counter()
        parts: deque[list[Record]] = deque([batch])
        try:
            while parts:
                part = parts.popleft()
                error = self._attempt(self._handle, part)
                if error is None:
                    continue
                if len(part) > 1:
                    middle = len(part) // 2
                    parts.extendleft((part[middle:], part[:middle]))
                    continue
                record = part[0]
                log.warning("%s: record %s:%s:%s failed alone (%s); dead-lettering it", self.name,
                            record.topic, record.partition, record.offset, type(error).__name__)
                metrics.PROCESSING_ERRORS.labels(self.name, type(error).__name__).inc()
                failure = self._attempt(functools.partial(self._dead_letter, error=error), part)
                if failure is not None:
                    raise RuntimeError(f"{self.name}: a dead letter could not be written") from failure
        except Stopped:
            return False
        finally:
            self._resume()
        metrics.STAGE_BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        return True

    def _dead_letter(self, part: Sequence[Record], error: Exception) -> None:
        self._poison(part[0], error)

    def _attempt(self, handle: BatchHandler, part: list[Record]) -> Exception | None:
        """None once ``handle`` succeeded; the exception if it is a data error.

        Infrastructure errors are retried with backoff (raises ``Stopped`` if the worker
        stops meanwhile).
        """
        attempt = 0
        while True:
            try:
                handle(part)
                return None
            except Stopped:
                raise
            except Exception as exc:
                if not is_infrastructure(exc):
                    return exc
                attempt += 1
                metrics.STAGE_RETRIES.labels(self.name).inc()
                delay = min(self._max_backoff_s, 0.05 * 2**attempt)
                log.warning("%s: batch of %s failed (attempt %s: %s); retrying in %.2fs",
                            self.name, len(part), attempt, describe(exc)[:300], delay)
                if not self._wait_in_group(delay):
                    raise Stopped from None

    def _wait_in_group(self, seconds: float) -> bool:
        """Sleep ``seconds`` while polling with every partition paused: the group keeps us.

        A record from a partition assigned during the wait is held for the next batch (its
        partition is paused at once, so it is that partition's first). Returns False if the
        worker was stopped.
        """
        consumer = self._consumer
        if consumer is None:  # unit tests drive the loop without Kafka
            return not self._stop.wait(seconds)
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            held = [TopicPartition(t, p) for t, p in self._assigned]
            if held:
                consumer.pause(held)
            self._paused = True
            message = consumer.poll(min(left, 0.5))
            if message is not None and message.error() is None:
                self._held.append(message)
                # a polled message without an error has its topic and partition
                consumer.pause([TopicPartition(message.topic(), message.partition())])  # type: ignore[arg-type]
        return False

    def _resume(self) -> None:
        """Fetch again from every partition this loop holds (a no-op unless it waited)."""
        if self._paused and self._consumer is not None and self._assigned:
            self._consumer.resume([TopicPartition(t, p) for t, p in self._assigned])
        self._paused = False

    def _report_lag(self, consumer: Consumer, offsets: list[TopicPartition]) -> None:
        """Lag per partition from the watermarks librdkafka caches from its fetches (no request)."""
        for tp in offsets:
            try:
                _, high = consumer.get_watermark_offsets(tp, cached=True)
            except KafkaException:
                continue
            if high >= 0:
                lag = metrics.CONSUMER_LAG.labels(self.name, tp.topic, str(tp.partition))
                lag.set(max(0, high - tp.offset))

    def _tick_safely(self) -> None:
        """A failing tick (Redis still loading its AOF after a restart) is retried next time."""
        try:
            assert self._tick is not None
            self._tick(self.partitions(self._topics[0]))
        except Exception:  # the next tick retries; nothing is lost (outboxes, due timers stay)
            log.exception("%s: tick failed; trying again on the next one", self.name)

    def _on_commit(self, error: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if error is not None and error.code() != KafkaError._NO_OFFSET:
            log.info("%s: commit not taken (%s); trying again", self.name, error)
            return
        self._committed(partitions)

    def _committed(self, partitions: list[TopicPartition]) -> None:
        """Forget positions the coordinator took (a newer one processed since stays pending)."""
        for tp in partitions:
            key = (tp.topic, tp.partition)
            if tp.error is None and self._uncommitted.get(key) == tp.offset:
                del self._uncommitted[key]
