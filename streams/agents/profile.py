"""resolved -> profile state and triggers; merges -> combined state; a sweep for timed triggers.

Loops and delegates to streams.stages.profile.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import faust

from connectors.producer import AsyncProducer
from schemas.codec import SchemaRegistry
from streams.batching import run_batches, tick_safely
from streams.stages.profile import ProfileStage
from streams.stages.resolve import RawRecord
from streams.topics import Topics
from touchstream import metrics
from touchstream.settings import Settings


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def register(app: faust.App, topics: Topics, settings: Settings, stage: ProfileStage,
             producer: AsyncProducer, registry: SchemaRegistry) -> None:
    resolved = app.topic(topics.resolved, key_serializer="raw", value_serializer="raw")
    merges = app.topic(topics.merges, key_serializer="raw", value_serializer="raw")
    decode_merge = registry.decoder("identity_merge")

    async def emit(triggers: Sequence[dict]) -> None:
        if triggers:
            await producer.send_all(topics.triggers, [stage.encode(t) for t in triggers])
            await asyncio.to_thread(stage.sent, triggers)

    async def handle(events: Sequence[faust.EventT]) -> None:
        started = time.perf_counter()
        batch = [RawRecord(e.message.partition, e.message.offset, e.message.key, e.message.value)
                 for e in events]
        out = await asyncio.to_thread(stage.process, batch, _now_ms())
        await asyncio.gather(emit(out.triggers), producer.send_all(topics.deadletter, out.deadletters))
        metrics.STAGE_BATCH_SECONDS.labels("profile").observe(time.perf_counter() - started)

    @app.agent(resolved, name="profile")
    async def profile(stream: faust.StreamT) -> None:
        await run_batches(stream, handle, max_batch=settings.batch_size,
                          within_s=settings.batch_within_ms / 1000, name="profile")

    async def handle_merges(events: Sequence[faust.EventT]) -> None:
        for event in events:
            merge = decode_merge(event.message.value)
            await asyncio.to_thread(stage.store.merge_profiles, merge["survivor"], merge["merged"])

    @app.agent(merges, name="merge-profiles")
    async def merge_profiles(stream: faust.StreamT) -> None:
        await run_batches(stream, handle_merges, max_batch=100, within_s=0.1, name="merge-profiles")

    async def sweep() -> None:
        """Timed triggers (dwell without follow-up, inactivity, post-purchase care) by the clock."""
        assigned = sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == topics.resolved)
        if not assigned:
            return
        now = _now_ms()
        due = await asyncio.to_thread(stage.sweep, now, assigned)
        stale = await asyncio.to_thread(stage.resend_stale, now)
        await emit(due + stale)

    app.timer(interval=1.0, name="profile-sweep")(tick_safely("profile-sweep", sweep))

