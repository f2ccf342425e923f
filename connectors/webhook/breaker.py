"""A circuit breaker per endpoint: a receiver that keeps failing is left alone for a while.

Without it a dead receiver costs every batch its whole retry budget (``max_attempts`` with
backoff, up to the batch deadline), and since offsets move on only when a batch is settled, the
healthy endpoints' next triggers wait behind it. It counts *deliveries*, not attempts: a
receiver that answers 503 twice and then 204 (busy, but recovering on retry) never opens it.
After ``failures`` deliveries in a row failed with their retries spent (timeouts, network
errors, 5xx, 408, 429 to the last attempt) the circuit opens: deliveries to that endpoint end at
once as ``circuit_open`` dead letters (``touchstream deadletter replay --stage webhook --reason
circuit_open`` sends them later; endpoints that already have a trigger skip it), and deliveries
still retrying stop at their next attempt. After ``open_s`` one delivery goes as a probe while
the endpoint's other deliveries wait for its outcome: delivered (or a final 4xx: the receiver is
up) closes the circuit and they go; failed opens it again for ``open_s`` and they are
dead-lettered. The state lives in the sink process: each sink learns on its own.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable
from dataclasses import dataclass


class Admission(enum.Enum):
    """What the breaker says to one delivery."""

    PASS = "pass"  # closed: go ahead  # noqa: S105 (not a password)
    PROBE = "probe"  # the one delivery that tests a receiver after open_s
    WAIT = "wait"  # a probe is out: wait for its answer (``probe_settled``), then ask again
    REFUSE = "refuse"  # open: do not call the receiver


@dataclass(frozen=True)
class BreakerPolicy:
    """``failures`` failed deliveries in a row open the circuit for ``open_s``; 0 failures: never."""

    failures: int = 5
    open_s: float = 30.0


class CircuitBreaker:
    """Closed, open or half-open (one probe out), on the clock the deliverer measures deadlines on."""

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float]) -> None:
        self.policy = policy
        self._clock = clock
        self._failed = 0
        self._opened_at: float | None = None
        self._probe: asyncio.Event | None = None  # set when the probe out has its answer

    @property
    def is_open(self) -> bool:
        """True from the opening until a probe succeeds (half-open included)."""
        return self._opened_at is not None

    def retry_in(self) -> float:
        """Seconds until the next probe may go (0 when closed or due)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.policy.open_s - self._clock())

    def admit(self) -> Admission:
        """Whether a delivery may call the receiver now."""
        if self._opened_at is None:
            return Admission.PASS
        if self._probe is not None:
            return Admission.WAIT
        if self.retry_in() > 0:
            return Admission.REFUSE
        self._probe = asyncio.Event()
        return Admission.PROBE

    async def probe_settled(self) -> None:
        """Return once the probe out has been answered (or given up)."""
        if self._probe is not None:
            await self._probe.wait()

    def release(self, admission: Admission) -> None:
        """A probe that never got an answer (cancelled): let the next delivery probe instead."""
        if admission is Admission.PROBE and self._probe is not None:
            self._probe.set()
            self._probe = None

    def record(self, failed: bool, admission: Admission) -> bool:
        """Count one delivery's outcome; True when this outcome opened the circuit."""
        probe = self._probe if admission is Admission.PROBE else None
        if probe is not None:
            self._probe = None
        try:
            return self._count(failed, admission)
        finally:
            if probe is not None:
                probe.set()  # the waiters ask again: closed (go) or re-opened (refused)

    def _count(self, failed: bool, admission: Admission) -> bool:
        if not failed:
            self._failed = 0
            self._opened_at = None
            return False
        self._failed += 1
        if admission is Admission.PROBE:
            self._opened_at = self._clock()  # still failing: wait another open_s
            return False
        if self._opened_at is None and self.policy.failures and self._failed >= self.policy.failures:
            self._opened_at = self._clock()
            return True
        return False
