"""The one loop every pipeline agent runs: take a batch, process it until it succeeds, then ack.

Events are acknowledged (and so their offsets committed) only after the batch's effects are
in Redis and its outputs acknowledged by Kafka. A failure retries the same batch with backoff
rather than skipping it; records that are bad in themselves never fail a batch, the stage turns
them into dead letters. A SIGKILL anywhere costs a replay, nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

import faust

log = logging.getLogger(__name__)

BatchHandler = Callable[[Sequence[faust.EventT]], Awaitable[None]]


async def run_batches(stream: faust.StreamT, handle: BatchHandler, *, max_batch: int, within_s: float,
                      name: str, max_backoff_s: float = 5.0) -> None:
    async for events in stream.noack_take(max_batch, within=within_s):
        attempt = 0
        while True:
            try:
                await handle(events)
                break
            except asyncio.CancelledError:
                raise
            except Exception:  # retried, never dropped: the batch is not acked until it succeeds
                attempt += 1
                delay = min(max_backoff_s, 0.05 * 2**attempt)
                log.exception("%s: batch of %s failed (attempt %s); retrying in %.2fs",
                              name, len(events), attempt, delay)
                await asyncio.sleep(delay)
        for event in events:
            await stream.ack(event)
