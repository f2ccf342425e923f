"""POST one trigger to one endpoint until it is answered, refused, out of attempts or out of time.

Each delivery is its own coroutine, so a slow or failing endpoint only delays its own
deliveries; a per-endpoint semaphore keeps one receiver from taking every connection, and a
per-endpoint circuit breaker (``breaker.py``) stops calling a receiver that keeps failing. Waits
between attempts hold no semaphore. No attempt starts after the batch deadline (a retry
that would is not waited for; one still queued for a connection is given up), and each runs
with its full timeout, so a batch lasts at most its deadline plus the longest timeout. A stop
request abandons waiting retries.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from connectors.webhook import metrics
from connectors.webhook.breaker import Admission, CircuitBreaker
from connectors.webhook.config import Endpoint
from connectors.webhook.done import DoneStore
from connectors.webhook.retry import Verdict, backoff_delay, classify, parse_retry_after
from connectors.webhook.signing import ATTEMPT_HEADER, IDEMPOTENCY_HEADER, SIGNATURE_HEADER, sign

log = logging.getLogger(__name__)

DELIVERED = "delivered"
ALREADY_DONE = "already_done"
DELIVERY_FAILED = "delivery_failed"
ABANDONED = "abandoned"
CIRCUIT_OPEN = "circuit_open"


#: Waits up to ``seconds`` for ``stop``; True if it was set. Tests pass one that does not sleep.
Waiter = Callable[[asyncio.Event, float], Awaitable[bool]]


async def wait_for_stop(stop: asyncio.Event, seconds: float) -> bool:
    """The real waiter: sleep ``seconds`` unless ``stop`` is set first."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


@dataclass(eq=False)
class Delivery:
    """One (trigger, endpoint) pair and, once done, how it ended."""

    endpoint: Endpoint
    body: bytes
    idempotency_key: str
    done_key: str
    attempts: int = 0
    outcome: str | None = None  # delivered, rejected_4xx (or _3xx), delivery_failed, abandoned
    detail: str = ""  # last HTTP status or error class: what a dead letter says (never the body)


@dataclass(frozen=True)
class _Answer:
    verdict: Verdict
    result: str  # metric label: 2xx, 4xx, 429, timeout, network, ...
    detail: str
    status: int | None = None
    retry_after_s: float | None = None


class Deliverer:
    """Sends deliveries over one aiohttp session and records 2xx answers in the done store."""

    def __init__(self, session: aiohttp.ClientSession, done: DoneStore, *, stop: asyncio.Event | None = None,
                 rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic,
                 waiter: Waiter = wait_for_stop) -> None:
        self._session = session
        self._done = done
        self._stop = stop or asyncio.Event()
        self._rng = rng or random.Random()
        self._clock = clock
        self._wait = waiter
        self._slots: dict[str, asyncio.Semaphore] = {}
        self._breakers: dict[str, CircuitBreaker] = {}

    def now(self) -> float:
        """The clock deadlines are measured on (monotonic seconds)."""
        return self._clock()

    def _slot(self, endpoint: Endpoint) -> asyncio.Semaphore:
        slot = self._slots.get(endpoint.name)
        if slot is None:
            slot = self._slots[endpoint.name] = asyncio.Semaphore(endpoint.max_in_flight)
        return slot

    def breaker(self, endpoint: Endpoint) -> CircuitBreaker:
        """The endpoint's circuit breaker, kept for the life of the sink (across batches)."""
        breaker = self._breakers.get(endpoint.name)
        if breaker is None:
            breaker = self._breakers[endpoint.name] = CircuitBreaker(endpoint.breaker, self._clock)
            metrics.CIRCUIT_OPEN.labels(endpoint.name).set(0)
        return breaker

    async def deliver(self, delivery: Delivery, deadline: float) -> Delivery:
        """Attempt until a final outcome; never raises for what the receiver or network does.

        The endpoint's breaker is asked once per delivery (a probe's fellow deliveries wait for
        its outcome) and again before each retry; the delivery's outcome is what it counts."""
        breaker = self.breaker(delivery.endpoint)
        admission = breaker.admit()
        while admission is Admission.WAIT:
            await breaker.probe_settled()
            admission = breaker.admit()
        if admission is Admission.REFUSE:
            return self._refuse(delivery, breaker)
        try:
            await self._attempts(delivery, deadline, breaker, admission)
        except BaseException:  # cancelled: a probe without an outcome must not hold the others
            breaker.release(admission)
            raise
        if delivery.outcome == DELIVERED or str(delivery.outcome).startswith("rejected_"):
            self._record(delivery.endpoint, breaker, False, admission, delivery.detail)
        elif delivery.outcome == DELIVERY_FAILED and delivery.attempts:
            self._record(delivery.endpoint, breaker, True, admission, delivery.detail)
        else:  # abandoned, refused mid-way, or never attempted: says nothing of the receiver
            breaker.release(admission)
        return delivery

    def _refuse(self, delivery: Delivery, breaker: CircuitBreaker) -> Delivery:
        delivery.detail = "; ".join(filter(None, (
            delivery.detail, f"circuit open, next probe in {breaker.retry_in():.0f}s")))
        return self._finish(delivery, CIRCUIT_OPEN)

    async def _attempts(self, delivery: Delivery, deadline: float, breaker: CircuitBreaker,
                        admission: Admission) -> Delivery:
        endpoint = delivery.endpoint
        while True:
            if self._stop.is_set():
                return self._finish(delivery, ABANDONED)
            if delivery.attempts and admission is Admission.PASS and breaker.is_open:
                return self._refuse(delivery, breaker)  # others' failures opened it meanwhile
            async with self._slot(endpoint):
                if self._clock() > deadline:  # no attempt starts after the deadline: the batch stays bounded
                    delivery.detail = "; ".join(filter(None, (
                        delivery.detail, "batch deadline passed while waiting for a free connection")))
                    return self._finish(delivery, DELIVERY_FAILED)
                delivery.attempts += 1
                answer = await self._attempt(delivery)
            delivery.detail = answer.detail
            if answer.verdict is Verdict.DELIVERED:
                self._done.mark(delivery.done_key)
                return self._finish(delivery, DELIVERED)
            if answer.verdict is Verdict.REJECTED:
                return self._finish(delivery, f"rejected_{answer.status // 100}xx" if answer.status else
                                    DELIVERY_FAILED)
            if delivery.attempts >= endpoint.max_attempts:
                return self._finish(delivery, DELIVERY_FAILED)
            delay = backoff_delay(delivery.attempts, endpoint.backoff, self._rng)
            if answer.retry_after_s is not None:
                delay = max(delay, answer.retry_after_s)
            if self._clock() + delay > deadline:
                delivery.detail += "; next retry would pass the batch deadline"
                return self._finish(delivery, DELIVERY_FAILED)
            await self._wait(self._stop, delay)  # then try again, or give up if stopped meanwhile

    @staticmethod
    def _record(endpoint: Endpoint, breaker: CircuitBreaker, failed: bool, admission: Admission,
                detail: str) -> None:
        was_open = breaker.is_open
        if breaker.record(failed, admission):
            metrics.CIRCUIT_OPENED.labels(endpoint.name).inc()
            log.warning("webhook %s: circuit opened after %d deliveries in a row failed (last: %s); "
                        "deliveries are dead-lettered as circuit_open for %.0fs, then one probe",
                        endpoint.name, endpoint.breaker.failures, detail, endpoint.breaker.open_s)
        elif was_open and not breaker.is_open:
            log.info("webhook %s: circuit closed, the receiver answered (%s)", endpoint.name, detail)
        metrics.CIRCUIT_OPEN.labels(endpoint.name).set(1 if breaker.is_open else 0)

    def _finish(self, delivery: Delivery, outcome: str) -> Delivery:
        delivery.outcome = outcome
        metrics.deliveries(delivery.endpoint.name, outcome).inc()
        return delivery

    async def _attempt(self, delivery: Delivery) -> _Answer:
        endpoint = delivery.endpoint
        timeout = endpoint.timeout_s  # never cut short: the deadline only decides whether to retry
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(endpoint.secret, delivery.body),
            IDEMPOTENCY_HEADER: delivery.idempotency_key,
            ATTEMPT_HEADER: str(delivery.attempts),
        }
        started = time.perf_counter()
        try:
            async with self._session.post(endpoint.url, data=delivery.body, headers=headers,
                                          timeout=aiohttp.ClientTimeout(total=timeout),
                                          allow_redirects=False) as response:
                await response.read()  # drain so the connection is reused
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except TimeoutError:
            answer = _Answer(Verdict.RETRY, "timeout", f"no answer within {timeout:.1f}s")
        except aiohttp.ClientError as exc:
            answer = _Answer(Verdict.RETRY, "network", f"network error {type(exc).__name__}")
        else:
            verdict = classify(status)
            result = str(status) if status in (408, 429) else f"{status // 100}xx"
            answer = _Answer(verdict, result, f"HTTP {status}", status,
                             parse_retry_after(retry_after) if verdict is Verdict.RETRY else None)
        metrics.request_seconds(endpoint.name).observe(time.perf_counter() - started)
        metrics.attempts(endpoint.name, answer.result).inc()
        return answer
