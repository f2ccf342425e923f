"""The one way into the platform: validated records -> dedup -> Avro -> raw topic -> ack.

The collector and the importers both call :class:`Ingestor`, so every source gets the same
cleaning, dedup, counters and delivery guarantee.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cache

import redis.asyncio as aioredis

from connectors.dedup import EdgeDedup
from connectors.outcome import Outcome
from connectors.producer import AsyncProducer
from connectors.validation import Limits, validate_message
from identity.rules import IdentityRules, load_rules
from touchstream import metrics
from touchstream.errors import ValidationError


@cache
def _shipped_rules() -> IdentityRules:
    return load_rules()


def partition_key(record: dict, rules: IdentityRules | None = None) -> bytes:
    """``type:value`` of the record's strongest identifier (message id when it has none).

    The raw topic is keyed by it, so one person's events mostly share a partition even before
    OneID resolution. Strength is the identity rules' priority (default: the shipped rules), the
    one place it is written; types the rules do not list rank below every listed one.
    """
    ranks = (rules if rules is not None else _shipped_rules()).ranks
    unlisted = len(ranks)
    best: dict | None = None
    best_rank = unlisted + 1
    for identifier in record["identifiers"]:
        rank = ranks.get(identifier["type"], unlisted)
        if rank < best_rank:
            best, best_rank = identifier, rank
    if best is None:
        return f"message_id:{record['message_id']}".encode()
    return f"{best['type']}:{best['value']}".encode()


class Ingestor:
    """Dedup, encode, produce and acknowledge a request's worth of validated records."""

    def __init__(self, *, producer: AsyncProducer, dedup: EdgeDedup, encode: Callable[[dict], bytes],
                 topic: str, rules: IdentityRules) -> None:
        self._rules = rules
        self._producer = producer
        self._dedup = dedup
        self._encode = encode
        self._topic = topic

    async def ingest(self, records: Sequence[dict | None], outcomes: Sequence[Outcome], *, source: str,
                     source_kind: str) -> list[Outcome]:
        """Final outcomes, index by index. Raises when the broker did not acknowledge (-> 503)."""
        final = list(outcomes)
        metrics.EVENTS_RECEIVED.labels(source_kind).inc(len(final))
        for outcome in final:
            if not outcome.accepted:
                metrics.EVENTS_REJECTED.labels(source_kind, outcome.reason or "invalid").inc()
        candidates = [(i, r) for i, r in enumerate(records) if r is not None]
        for _, record in candidates:
            for invalid in record["invalid_identifiers"]:
                # Label values stay a bounded set: client-chosen externalId types count as "custom".
                type_ = invalid["type"] if invalid["type"] in self._rules.ranks else "custom"
                metrics.INVALID_IDENTIFIERS.labels(type_, invalid["reason"]).inc()

        seen = await self._dedup.seen(source, [r["message_id"] for _, r in candidates])
        to_send: list[tuple[int, dict]] = []
        in_request: set[str] = set()
        for (index, record), already in zip(candidates, seen, strict=True):
            if already or record["message_id"] in in_request:
                final[index] = replace(final[index], duplicate=True)
                continue
            in_request.add(record["message_id"])
            to_send.append((index, record))
        duplicates = len(candidates) - len(to_send)
        if duplicates:
            metrics.EVENTS_DUPLICATE.labels("edge").inc(duplicates)

        started = time.perf_counter()
        await self._producer.send_all(
            self._topic, [(partition_key(r, self._rules), self._encode(r)) for _, r in to_send]
        )
        metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)
        metrics.EVENTS_ACCEPTED.labels(source_kind).inc(len(to_send))
        await self._dedup.mark(source, [r["message_id"] for _, r in to_send])
        return final


class BlockingIngest:
    """Drives the Ingestor from synchronous code (the importers): one chunk per call.

    Built by ``apps.factory.blocking_ingest``; it owns the Redis client and producer it is given
    and closes them with :meth:`close`."""

    def __init__(self, ingestor: Ingestor, producer: AsyncProducer, client: aioredis.Redis, *,
                 source: str, limits: Limits) -> None:
        self._source = source
        self._limits = limits
        self._loop = asyncio.new_event_loop()
        self._client = client
        self._ingestor, self._producer = ingestor, producer

    def submit(self, messages: list[dict]) -> list[Outcome]:
        """Validate, dedup and produce; one Outcome per message, after the broker's ack."""
        received = time.time_ns() // 1_000_000
        records: list[dict | None] = []
        outcomes: list[Outcome] = []
        for index, message in enumerate(messages):
            try:
                records.append(validate_message(message, type_=None, received_at_ms=received,
                                                source=self._source, limits=self._limits))
                outcomes.append(Outcome.ok(index))
            except ValidationError as exc:
                records.append(None)
                outcomes.append(Outcome.from_error(index, exc))
        return self._loop.run_until_complete(
            self._ingestor.ingest(records, outcomes, source=self._source, source_kind="import")
        )

    def close(self) -> None:
        self._producer.close()
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()
