"""One batch of trigger records: decode, fan out to matching endpoints, deliver, dead-letter.

Kafka-free so it can be tested alone: the sink hands it records (one partition's, or any) and
gets back the dead letters to produce before it commits. Pairs already in the done store are skipped (one
MGET per batch); the same pair twice in one batch is delivered once. Triggers of a person erased
since they fired are not delivered (one HMGET of the tombstones per batch; counted).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from connectors.webhook import metrics
from connectors.webhook.config import WebhookConfig
from connectors.webhook.delivery import ABANDONED, ALREADY_DONE, DELIVERED, Deliverer, Delivery
from connectors.webhook.done import DoneStore
from connectors.webhook.exceptions import DoneStoreError, PayloadError
from connectors.webhook.payload import build_body
from schemas.codec import SchemaRegistry
from schemas.exceptions import DecodeError
from streams.deadletters import DeadLetter
from streams.records import Record
from touchstream import metrics as metrics_root

log = logging.getLogger(__name__)

STAGE = "webhook"


#: What the batch needs of one Kafka message: the record every loop and sink shares.
TriggerMessage = Record


@dataclass
class BatchResult:
    """Counts of one batch, and the dead letters to produce before commit."""

    triggers: int = 0
    deliveries: int = 0
    delivered: int = 0
    already_done: int = 0
    erased: int = 0  # triggers of erased people, not delivered
    abandoned: int = 0
    marks_saved: bool = True
    deadletters: list[DeadLetter] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every trigger delivered, skipped or dead-lettered: the batch's offsets may be committed."""
        return self.abandoned == 0


class BatchDelivery:
    """Turns a batch of trigger messages into deliveries and dead letters."""

    def __init__(self, config: WebhookConfig, deliverer: Deliverer, done: DoneStore,
                 registry: SchemaRegistry, *,
                 erased: Callable[[Sequence[str]], Awaitable[set[str]]] | None = None) -> None:
        self._config = config
        self._deliverer = deliverer
        self._done = done
        self._decode = registry.decoder("trigger")
        self._erased = erased

    async def process(self, messages: Sequence[TriggerMessage]) -> BatchResult:
        """Deliver every trigger of the batch to every matching endpoint, within the batch deadline."""
        deadline = self._deliverer.now() + self._config.batch_deadline_s
        result = BatchResult(triggers=len(messages))
        metrics.TRIGGERS.inc(len(messages))
        owners: dict[str, tuple[TriggerMessage, Delivery]] = {}  # done key -> first message, delivery
        dead: list[tuple[TriggerMessage, str, str, int]] = []  # message, reason, error, attempts
        decoded: list[tuple[TriggerMessage, dict[str, Any]]] = []
        for msg in messages:
            try:
                decoded.append((msg, self._decode(msg.value)))
            except DecodeError as exc:
                dead.append((msg, "avro_decode", str(exc), 1))
        if self._erased is not None:
            gone = await self._erased(list({trigger["oneid"] for _, trigger in decoded}))
            if gone:
                kept = [(msg, trigger) for msg, trigger in decoded if trigger["oneid"] not in gone]
                result.erased = len(decoded) - len(kept)
                metrics_root.ERASED_REFUSED.labels(STAGE).inc(result.erased)
                decoded = kept
        for msg, trigger in decoded:
            try:
                endpoints = self._config.endpoints_for(trigger["rule"])
                body = build_body(trigger) if endpoints else b""
            except PayloadError as exc:
                dead.append((msg, "invalid_values", str(exc), 1))
                continue
            except Exception as exc:  # a data error in one trigger must not stop the others
                metrics_root.PROCESSING_ERRORS.labels(STAGE, type(exc).__name__).inc()
                dead.append((msg, "processing_error", f"{type(exc).__name__}: {exc}", 1))
                continue
            if not endpoints:
                continue
            key = trigger["idempotency_key"]
            for endpoint in endpoints:
                done_key = self._done.key(endpoint.name, key)
                if done_key in owners:
                    result.already_done += 1  # same trigger twice in one batch: one delivery
                    metrics.deliveries(endpoint.name, ALREADY_DONE).inc()
                    continue
                owners[done_key] = (msg, Delivery(endpoint, body, key, done_key))

        done_keys = list(owners)
        pending: list[tuple[TriggerMessage, Delivery]] = []
        for done_key, is_done in zip(done_keys, await self._done.already_done(done_keys), strict=True):
            msg, delivery = owners[done_key]
            if is_done:
                result.already_done += 1
                metrics.deliveries(delivery.endpoint.name, ALREADY_DONE).inc()
            else:
                pending.append((msg, delivery))
        result.deliveries = len(pending)

        await asyncio.gather(*(self._deliverer.deliver(d, deadline) for _, d in pending))
        failures: dict[tuple[str, str], list[Delivery]] = {}
        for msg, delivery in pending:
            if delivery.outcome == DELIVERED:
                result.delivered += 1
            elif delivery.outcome == ABANDONED:
                result.abandoned += 1
            else:
                error = (f"endpoint {delivery.endpoint.name}: {delivery.detail} "
                         f"after {delivery.attempts} attempt(s)")
                dead.append((msg, str(delivery.outcome), error, delivery.attempts))
                failures.setdefault((delivery.endpoint.name, str(delivery.outcome)), []).append(delivery)
        for (name, outcome), failed in failures.items():  # one line per endpoint and outcome, not per trigger
            log.warning("webhook %s: %s trigger(s) %s, e.g. %s after %s attempt(s)", name, len(failed),
                        outcome, failed[0].detail, failed[0].attempts)
        try:
            await self._done.flush()
        except DoneStoreError:
            log.exception("webhook: delivered marks of the batch are not in Redis yet")
            result.marks_saved = False  # the sink retries DoneStore.flush before it commits
        if result.complete:  # else nothing is committed and the batch is retried whole on restart
            result.deadletters = [DeadLetter(STAGE, reason, error, msg, attempts=attempts)
                                  for msg, reason, error, attempts in dead]
        return result
