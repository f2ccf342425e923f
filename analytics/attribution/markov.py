"""The data-driven model: a first-order Markov chain over journeys and each key's removal effect.

Journeys are the converting ones (each counted conversion's touches, as the other models see
them) and the lost ones: a person's touches that no conversion followed within the lookback,
split where the person converted in between (touches share a lost journey when the same next
conversion follows them, or none: in journey order, the first conversion after the touch). The
chain's states are the keys (channels or campaigns) plus start, conversion and null; the
transitions are counted over the journeys' arrays (a handful of counts however many events),
Python solves the chain.

With transient states T (start and the keys), Q their transition probabilities, r the
probability of converting next, and N = (I - Q)^-1 the fundamental matrix:

- P(convert from i) = (N r)_i;
- removing key c (its visits lead to null) leaves P(start) - h(start, c) * P(c), where
  h(start, c) = N[start, c] / N[c, c] is the chance of ever reaching c (a journey reaching c
  converts from there with P(c), whatever it did before);
- the removal effect of c is 1 - P_without_c / P(start); each key is credited its effect's
  share of all effects, times the touched conversions (and their revenue).

One inversion gives every removal effect. It is dense Gauss-Jordan in plain Python (zero
entries skipped): instant for channels, seconds for a few hundred campaigns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from analytics.attribution.journeys import Journeys
from analytics.attribution.options import NO_TOUCH, AttributionOptions
from analytics.attribution.pairs import Pairs

#: Counted with ``np.bincount`` while the (source, target, converted) codes fit in this many
#: bins, else by sorting the codes (thousands of campaigns).
_BINS = 1 << 22


@dataclass(frozen=True)
class Transition:
    """``count`` journeys stepped from ``source`` (None: the start) to ``target`` (None: the end,
    a conversion when ``converted``)."""

    source: str | None
    target: str | None
    converted: bool
    count: int


def transitions(journeys: Journeys, pairs: Pairs, keys: np.ndarray, names: Sequence[str],
                options: AttributionOptions) -> list[Transition]:
    """Every transition of the converting and lost journeys, counted."""
    lookback = int(options.lookback_ms)
    size = len(journeys.ts)
    touch_at = np.flatnonzero(~journeys.is_conv)
    # the first conversion after each touch (journey order: its own millisecond's come after it)
    conv_or_end = np.where(journeys.is_conv, np.arange(size), size)
    following = np.minimum.accumulate(conv_or_end[::-1])[::-1][touch_at]
    found = np.minimum(following, max(size - 1, 0))
    converts = (following < size) & (journeys.person[found] == journeys.person[touch_at])
    lost = ~converts | (journeys.ts[found] - journeys.ts[touch_at] > lookback)
    if options.conversion.since_ms is not None:
        lost &= journeys.ts[touch_at] >= int(options.conversion.since_ms) - lookback
    if options.conversion.until_ms is not None:
        lost &= journeys.ts[touch_at] <= int(options.conversion.until_ms)
    at, journey = touch_at[lost], np.where(converts, following, size)[lost]
    key = keys[at]
    starts = np.ones(len(at), dtype=bool)
    starts[1:] = (journeys.person[at][1:] != journeys.person[at][:-1]) | (journey[1:] != journey[:-1])
    ends = np.roll(starts, -1)  # the last touch of each lost journey
    won = keys[pairs.at]
    won_from = np.where(pairs.pos == 1, -1, np.roll(won, 1))
    won_ends = pairs.pos == pairs.n[pairs.conv]
    none = np.full(int(ends.sum()), -1)
    source = np.concatenate([np.where(starts, -1, np.roll(key, 1)), key[ends], won_from, won[won_ends]])
    target = np.concatenate([key, none, won, np.full(int(won_ends.sum()), -1)])
    converted = np.zeros(len(source), dtype=np.int64)
    converted[len(source) - int(won_ends.sum()):] = 1
    states = len(names) + 1
    code = ((source + 1) * states + target + 1) * 2 + converted
    if states * states * 2 <= _BINS:
        counts = np.bincount(code, minlength=states * states * 2)
        codes = np.flatnonzero(counts)
        counts = counts[codes]
    else:
        codes, counts = np.unique(code, return_counts=True)
    named = [None, *names]
    return [Transition(named[c // 2 // states], named[c // 2 % states], bool(c % 2), int(k))
            for c, k in zip(codes.tolist(), counts.tolist(), strict=True)]


def removal_effects(steps: Sequence[Transition]) -> dict[str, float]:
    """Each key's removal effect (0..1); 0 for every key when no journey converted."""
    keys = sorted({s.source for s in steps if s.source is not None} | {s.target for s in steps
                                                                        if s.target is not None})
    index = {key: i + 1 for i, key in enumerate(keys)}  # 0 is the start
    size = len(keys) + 1
    out = [[0.0] * size for _ in range(size)]
    converts = [0.0] * size
    totals = [0.0] * size
    for step in steps:
        i = 0 if step.source is None else index[step.source]
        totals[i] += step.count
        if step.target is not None:
            out[i][index[step.target]] += step.count
        elif step.converted:
            converts[i] += step.count
    # A = I - Q; a state never left (none here: every journey ends) keeps the identity row
    matrix = [[(1.0 if i == j else 0.0) - (out[i][j] / totals[i] if totals[i] else 0.0) for j in range(size)]
              for i in range(size)]
    r = [converts[i] / totals[i] if totals[i] else 0.0 for i in range(size)]
    fundamental = _inverse(matrix)
    p = [sum(fundamental[i][j] * r[j] for j in range(size) if r[j]) for i in range(size)]
    if p[0] <= 0.0:
        return dict.fromkeys(index, 0.0)
    return {key: min(1.0, max(0.0, fundamental[0][c] / fundamental[c][c] * p[c] / p[0]))
            for key, c in index.items()}


def _inverse(matrix: list[list[float]]) -> list[list[float]]:
    """Gauss-Jordan with partial pivoting; rows whose factor is 0 are skipped (Q is sparse)."""
    size = len(matrix)
    a = [row[:] + [1.0 if i == j else 0.0 for j in range(size)] for i, row in enumerate(matrix)]
    for col in range(size):
        pivot = max(range(col, size), key=lambda i: abs(a[i][col]))
        a[col], a[pivot] = a[pivot], a[col]
        lead = a[col][col]
        if lead == 0.0:
            raise ValueError("the chain has a state it never leaves")
        row = [v / lead for v in a[col]]
        a[col] = row
        for i in range(size):
            factor = a[i][col]
            if i != col and factor != 0.0:
                a[i] = [x - factor * y for x, y in zip(a[i], row, strict=True)]
    return [r[size:] for r in a]


def markov_credits(steps: Sequence[Transition], touched: int, touched_revenue: float, untouched: int,
                   untouched_revenue: float) -> list[tuple[str, float, float]]:
    """(key, conversions, revenue) for each key of the chain by its removal effect's share of the
    ``touched`` conversions, then ``(none)``: the ``untouched`` ones, when there are any."""
    effects = removal_effects(steps)
    total = sum(effects.values())
    rows = [(key, touched * share, touched_revenue * share)
            for key, share in ((k, effects[k] / total if total else 0.0) for k in sorted(effects))]
    if untouched:
        rows.append((NO_TOUCH, float(untouched), float(untouched_revenue)))
    return rows
