"""raw -> resolved: the OneID agent. Loops and delegates to streams.stages.resolve."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import faust

from connectors.producer import AsyncProducer
from streams.batching import run_batches, tick_safely
from streams.stages.resolve import RawRecord, ResolveStage
from streams.topics import Topics
from touchstream import metrics
from touchstream.settings import Settings


def register(app: faust.App, topics: Topics, settings: Settings, stage: ResolveStage,
             producer: AsyncProducer) -> None:
    raw = app.topic(topics.raw, key_serializer="raw", value_serializer="raw")

    async def handle(events: Sequence[faust.EventT]) -> None:
        started = time.perf_counter()
        batch = [RawRecord(e.message.partition, e.message.offset, e.message.key, e.message.value)
                 for e in events]
        out = await asyncio.to_thread(stage.process, batch)
        await asyncio.gather(
            producer.send_all(topics.resolved, out.resolved),
            producer.send_all(topics.merges, out.merges),
            producer.send_all(topics.rejections, out.rejections),
            producer.send_all(topics.deadletter, out.deadletters),
        )
        if out.merged_ids:
            await asyncio.to_thread(stage.merges_acknowledged, out.merged_ids)
        metrics.STAGE_BATCH_SECONDS.labels("resolve").observe(time.perf_counter() - started)

    async def resend_merges() -> None:
        """Merge records that a crash kept from Kafka (the graph's merge outbox)."""
        merged, records = await asyncio.to_thread(stage.stale_merges, time.time())
        if records:
            await producer.send_all(topics.merges, records)
            await asyncio.to_thread(stage.merges_acknowledged, merged)

    app.timer(interval=5.0, name="resend-merges")(tick_safely("resend-merges", resend_merges))

    @app.agent(raw, name="resolve")
    async def resolve(stream: faust.StreamT) -> None:
        await run_batches(stream, handle, max_batch=settings.batch_size,
                          within_s=settings.batch_within_ms / 1000, name="resolve")
