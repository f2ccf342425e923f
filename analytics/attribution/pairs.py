"""Each counted conversion with the touches it credits: what every model reads.

A conversion's touches are its person's touches from the lookback before it up to its own
moment. In journey order they are the run of touches right before the conversion (touches of
its own millisecond sort before it), back to the first at or after ``ts - lookback``: found by a
binary search per conversion, all conversions at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analytics.attribution.journeys import Journeys


@dataclass(frozen=True)
class Pairs:
    """Per counted conversion: ``revenue`` and ``n``, its touches (0: none preceded it). Per
    (conversion, touch) pair, conversion by conversion and touches in journey order: ``conv``
    (the conversion's index here), ``at`` (the touch's position in the journeys) and ``pos``
    (1..n)."""

    revenue: np.ndarray
    n: np.ndarray
    conv: np.ndarray
    at: np.ndarray
    pos: np.ndarray


def build_pairs(journeys: Journeys, lookback_ms: int) -> Pairs:
    conv_at = np.flatnonzero(journeys.is_conv)
    before = conv_at - np.arange(len(conv_at))  # touches before each conversion, all people's
    counted = journeys.source.counted[journeys.rows[conv_at]]
    conv_at, end = conv_at[counted], before[counted]
    touch_at = np.flatnonzero(~journeys.is_conv)
    start = _first_at_or_after(journeys.person[touch_at], journeys.ts[touch_at], journeys.person[conv_at],
                               journeys.ts[conv_at] - int(lookback_ms), end)
    n = end - start
    conv = np.repeat(np.arange(len(n)), n)
    pos = np.arange(len(conv)) - np.repeat(np.cumsum(n) - n, n) + 1
    revenue = journeys.source.revenue[journeys.rows[conv_at]]
    return Pairs(revenue, n, conv, touch_at[start[conv] + pos - 1], pos)


def _first_at_or_after(person: np.ndarray, ts: np.ndarray, who: np.ndarray, since: np.ndarray,
                       end: np.ndarray) -> np.ndarray:
    """For each query, the first index in ``[first of who, end)`` whose time is at or after
    ``since`` (``end`` if none): ``person`` ascending, ``ts`` ascending within a person."""
    low, high = np.searchsorted(person, who), end.copy()
    while True:
        open_ = low < high
        if not open_.any():
            return low
        mid = (low + high) // 2
        early = open_ & (ts[np.minimum(mid, len(ts) - 1)] < since)
        low = np.where(early, mid + 1, low)
        high = np.where(open_ & ~early, mid, high)
