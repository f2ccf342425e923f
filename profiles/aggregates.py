"""Rolling aggregates as time buckets: the math shared by the engine, the reader and the tests.

An aggregate over a window ``W`` keeps one Redis hash field per bucket of ``B`` ms
(``a:<name>:<bucket index>``). As of time ``t`` the window is the ``ceil(W/B)`` buckets ending
with the bucket of ``t``: it covers between ``W - B`` and ``W`` of time, so a count can miss
at most the oldest bucket's worth of events (1 h of a 7-day window; 1 day of 90 days; 1 week
of a year). Buckets that can no longer be read (older than the window, allowing for late
events) are pruned on write, so memory is bounded by ``ceil(W/B) + 1`` fields per aggregate.
Lifetime aggregates (no window) are a single bucket ``0``.

The Lua script (``profiles/lua/lib.lua``) implements the same ``combine`` per kind; both sides store
numbers the same way (:func:`format_number`), so a profile read back equals the engine's copy.
"""

from __future__ import annotations

import json
import math
import zlib
from collections.abc import Iterable
from typing import Any

from profiles import jsonsafe
from profiles.durations import DAY_MS, HOUR_MS, WEEK_MS

# op in the rules file -> kind stored in Redis (the Lua script knows kinds, not ops)
OP_KINDS = {"count": "n", "sum": "n", "min": "mn", "max": "mx", "first": "f", "last": "l", "unique": "u"}
UNIQUE_BITS = 64  # linear counting on a 64-bit map per bucket: within ~10% up to ~100 distinct values
# Larger amounts are not numbers a client can mean (and sums of them could overflow to inf);
# below it a double is still exact to the unit, so Lua and Python agree on every sum.
MAX_AMOUNT = 1e15


def is_amount(value: Any) -> bool:
    """A value sum/min/max may take: an int or finite float (not bool) of at most MAX_AMOUNT."""
    return jsonsafe.finite(value) and abs(value) <= MAX_AMOUNT


def auto_bucket_ms(window_ms: int) -> int:
    """Hour buckets up to a week, day buckets up to a quarter, week buckets beyond (<= 53 fields)."""
    if window_ms <= 0:
        return 0
    if window_ms <= 7 * DAY_MS:
        return HOUR_MS
    if window_ms <= 92 * DAY_MS:
        return DAY_MS
    return WEEK_MS


def bucket_count(window_ms: int, bucket_ms: int) -> int:
    """How many buckets make the window (1 for a lifetime aggregate)."""
    if window_ms <= 0 or bucket_ms <= 0:
        return 1
    return -(-window_ms // bucket_ms)


def bucket_index(ts_ms: int, bucket_ms: int) -> int:
    """The bucket holding ``ts_ms`` (always 0 for a lifetime aggregate)."""
    return ts_ms // bucket_ms if bucket_ms > 0 else 0


def window_range(as_of_ms: int, window_ms: int, bucket_ms: int) -> tuple[int, int]:
    """Inclusive bucket index range read as of ``as_of_ms`` (future buckets excluded)."""
    if window_ms <= 0 or bucket_ms <= 0:
        return (0, 0)
    hi = as_of_ms // bucket_ms
    return (hi - bucket_count(window_ms, bucket_ms) + 1, hi)


def keep_from(latest_ms: int, lateness_ms: int, window_ms: int, bucket_ms: int) -> int | None:
    """Lowest bucket index still readable by an accepted event; ``None`` keeps everything."""
    if window_ms <= 0 or bucket_ms <= 0:
        return None
    return window_range(latest_ms - lateness_ms, window_ms, bucket_ms)[0]


def format_number(value: float) -> str:
    """How both Python and Lua write numbers: integers plainly, others with 15 significant digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if math.isfinite(value) and value == math.floor(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.15g}"


def parse_number(text: str) -> int | float:
    """A stored number; a non-finite one (never written now) reads as 0 rather than poisoning sums."""
    try:
        return int(text)
    except ValueError:
        value = float(text)
        return value if math.isfinite(value) else 0


_DIGITS36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def to36(n: int) -> str:
    """Base-36 text of a non-negative int: ms stamps in "<ms>|<json>" values take 8 bytes, not 13."""
    if n < 0:
        raise ValueError(f"negative stamp {n}")
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _DIGITS36[r] + out
        if n == 0:
            return out


def stamped(ms: int, payload: str) -> str:
    """``"<ms base 36>|<payload>"``: traits and first/last values carry the time they were seen."""
    return f"{to36(ms)}|{payload}"


def unstamp(text: str) -> tuple[int, str]:
    ms, _, payload = text.partition("|")
    return int(ms, 36), payload


def unique_bit(value: Any) -> int:
    """The bit a value sets in a unique-count map (stable across processes, unlike ``hash``)."""
    text = value if isinstance(value, str) else jsonsafe.dumps(value, sort_keys=True)
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) % UNIQUE_BITS


def unique_estimate(bitmap: int) -> int:
    """Linear-counting estimate of distinct values from an OR of bucket maps."""
    zeros = UNIQUE_BITS - bitmap.bit_count()
    if zeros == 0:
        return round(UNIQUE_BITS * math.log(UNIQUE_BITS))  # saturated: a floor, not an estimate
    return round(-UNIQUE_BITS * math.log(zeros / UNIQUE_BITS))


def encode(kind: str, value: Any) -> str:
    """The stored text of a bucket value (``(ms, json)`` for first/last, int map for unique)."""
    if kind in ("f", "l"):
        return stamped(value[0], value[1])
    if kind == "u":
        return f"{value:016x}"
    return format_number(value)


def decode(kind: str, text: str) -> Any:
    if kind in ("f", "l"):
        return unstamp(text)
    if kind == "u":
        return int(text, 16)
    return parse_number(text)


def contribution(kind: str, value: Any, ts_ms: int) -> Any:
    """What one event adds to a bucket: 1 for count is passed in by the caller as ``value``."""
    if kind in ("f", "l"):
        return (ts_ms, jsonsafe.dumps(value))
    if kind == "u":
        return 1 << unique_bit(value)
    return value


def combine(kind: str, stored: Any, new: Any) -> Any:
    """Fold ``new`` into a bucket (``stored`` None: empty); the Lua ``combine`` does the same."""
    if stored is None:
        return new
    if kind == "n":
        total = stored + new
        if isinstance(total, float):
            return float(format_number(total)) if math.isfinite(total) else stored
        return total
    if kind == "mn":
        return new if new < stored else stored
    if kind == "mx":
        return new if new > stored else stored
    if kind == "f":
        return new if new[0] < stored[0] else stored
    if kind == "l":
        return new if new[0] >= stored[0] else stored
    if kind == "u":
        return stored | new
    raise ValueError(f"unknown aggregate kind {kind!r}")


def fold(op: str, values: Iterable[Any]) -> Any:
    """The aggregate's value from the bucket values in its window (None when empty)."""
    kind = OP_KINDS[op]
    acc: Any = None
    for value in values:
        acc = combine(kind, acc, value)
    if acc is None:
        return 0 if op in ("count", "sum", "unique") else None
    if kind in ("f", "l"):
        return json.loads(acc[1])
    if kind == "u":
        return unique_estimate(acc)
    if op == "sum":
        return float(acc)
    return acc


def value_as_of(op: str, buckets: dict[int, Any], as_of_ms: int, window_ms: int, bucket_ms: int) -> Any:
    """Evaluate one aggregate from its decoded buckets as of an event time."""
    if not buckets:
        return fold(op, ())
    lo, hi = window_range(as_of_ms, window_ms, bucket_ms)
    if op == "count":  # the common case, without the generic fold
        return sum(v for idx, v in buckets.items() if lo <= idx <= hi)
    return fold(op, (v for idx, v in buckets.items() if lo <= idx <= hi))
