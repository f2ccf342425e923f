"""When to try a delivery again, and after how long.

Network errors, timeouts, 408, 429 and 5xx are worth retrying (the receiver may recover);
any other non-2xx answer is the receiver saying no, and asking again would not change it.
Waits grow exponentially with "equal jitter" (half fixed, half random) so retries of a burst
spread out instead of hammering a recovering receiver in lock-step.
"""

from __future__ import annotations

import random
import time
from datetime import UTC
from email.utils import parsedate_to_datetime
from enum import Enum

from connectors.webhook.config import Backoff

RETRYABLE_4XX = frozenset({408, 429})


class Verdict(Enum):
    """What one HTTP answer means for a delivery."""

    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"


def classify(status: int) -> Verdict:
    """2xx delivered; 408, 429 and 5xx retry; anything else (3xx, other 4xx) rejected for good."""
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if status >= 500 or status in RETRYABLE_4XX:
        return Verdict.RETRY
    return Verdict.REJECTED


def nominal_delay(attempt: int, backoff: Backoff) -> float:
    """The un-jittered wait after failed attempt number ``attempt`` (1-based)."""
    exponent = min(max(attempt - 1, 0), 62)  # 2**62 * base already dwarfs any max_s
    return min(backoff.max_s, backoff.base_s * 2.0**exponent)


def backoff_delay(attempt: int, backoff: Backoff, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt``: uniform in [nominal/2, nominal]."""
    nominal = nominal_delay(attempt, backoff)
    return nominal / 2 + (rng or random).uniform(0, nominal / 2)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or HTTP-date), None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" parses zone-less; RFC 9110 dates are GMT anyway
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
