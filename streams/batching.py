"""The one loop every pipeline agent runs: take a batch, process it until it succeeds, then ack.

Events are acknowledged (and so their offsets committed) only after the batch's effects are
in Redis and its outputs acknowledged by Kafka. A failure retries the same batch with backoff
rather than skipping it; records that are bad in themselves never fail a batch, the stage turns
them into dead letters. A SIGKILL anywhere costs a replay, nothing else.

Filling and processing overlap: the take loop hands each batch to a processing task through a
queue of two, so Faust keeps fetching while a batch waits on Redis and Kafka (serially, the
stage spent most of its time idle on round trips). Batches are still processed and acked one
at a time, in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence

import faust

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[faust.EventT]], Awaitable[None]]


async def _process_until_done(handle: BatchHandler, events: Sequence[faust.EventT], name: str,
                              max_backoff_s: float) -> None:
    attempt = 0
    while True:
        try:
            await handle(events)
            return
        except asyncio.CancelledError:
            raise
        except Exception:  # retried, never dropped: the batch is not acked until it succeeds
            attempt += 1
            delay = min(max_backoff_s, 0.05 * 2**attempt)
            log.exception("%s: batch of %s failed (attempt %s); retrying in %.2fs",
                          name, len(events), attempt, delay)
            await asyncio.sleep(delay)


async def run_batches(stream: faust.StreamT, handle: BatchHandler, *, max_batch: int, within_s: float,
                      name: str, max_backoff_s: float = 5.0) -> None:
    queue: asyncio.Queue[list[faust.EventT]] = asyncio.Queue(maxsize=2)

    async def process() -> None:
        while True:
            events = await queue.get()
            await _process_until_done(handle, events, name, max_backoff_s)
            for event in events:
                await stream.ack(event)
            queue.task_done()

    processor = asyncio.create_task(process(), name=f"{name}-process")
    try:
        async for events in stream.noack_take(max_batch, within=within_s):
            if processor.done():  # it only ends by an error: surface it rather than stall
                processor.result()
            await queue.put(list(events))
    finally:
        processor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await processor


def tick_safely(name: str, tick: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """A timer body that logs a failure and tries again on the next tick.

    An exception escaping a Faust timer crashes the whole worker (seen when Redis was still
    loading its AOF after a restart); a timed sweep is naturally retried by the next tick.
    """

    async def guarded() -> None:
        try:
            await tick()
        except asyncio.CancelledError:
            raise
        except Exception:  # the next tick retries; nothing is lost (outboxes, due timers stay)
            log.exception("%s: tick failed; trying again on the next one", name)

    guarded.__name__ = getattr(tick, "__name__", name)
    guarded.__qualname__ = guarded.__name__
    return guarded
