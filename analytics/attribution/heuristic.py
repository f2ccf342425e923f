"""The five rule-based models over the pairs, each one weighted sum per key.

Per conversion with touches t1..tn (time order), the credit each touch gets, summing to 1:

==============  ====================================================================
first           1 to t1
last            1 to tn
linear          1/n to each
u_shaped        n=1: 1; n=2: 1/2 each; n>=3: 0.4 to t1 and tn, 0.2/(n-2) to each between
time_decay      w_i / sum(w), w_i = 2^(-(t_n - t_i) / half_life)
==============  ====================================================================

A model's conversions for a key are the sum of its credits, its revenue the sum of credit times
the conversion's revenue. A conversion without a touch gives its whole credit to ``(none)``.
"""

from __future__ import annotations

import numpy as np

from analytics.attribution.journeys import Journeys
from analytics.attribution.options import NO_TOUCH
from analytics.attribution.pairs import Pairs

MODELS = ("first", "last", "linear", "u_shaped", "time_decay")
#: What :func:`heuristic_sums` sums per key, in order.
COLUMNS = tuple(f"{model}_{what}" for model in MODELS for what in ("conversions", "revenue"))


def heuristic_sums(journeys: Journeys, pairs: Pairs, keys: np.ndarray, names: list[str],
                   half_life_ms: int) -> dict[str, np.ndarray]:
    """Each key some conversion credits (``(none)`` for conversions without a touch) and its
    sums of :data:`COLUMNS`."""
    n, pos = pairs.n[pairs.conv], pairs.pos
    last_ts = np.zeros(len(pairs.n), dtype=np.int64)
    last_ts[pairs.n > 0] = journeys.ts[pairs.at[pos == n]]
    weight = np.power(2.0, -(last_ts[pairs.conv] - journeys.ts[pairs.at]) / float(half_life_ms))
    credits = {
        "first": (pos == 1).astype(np.float64),
        "last": (pos == n).astype(np.float64),
        "linear": 1.0 / n,
        "u_shaped": np.select([n == 1, n == 2, (pos == 1) | (pos == n)], [1.0, 0.5, 0.4],
                              0.2 / np.maximum(n - 2, 1)),
        "time_decay": weight / np.bincount(pairs.conv, weights=weight, minlength=len(pairs.n))[pairs.conv],
    }
    key, revenue = keys[pairs.at], pairs.revenue[pairs.conv]
    sums = np.stack([np.bincount(key, weights=values, minlength=len(names))
                     for credit in credits.values() for values in (credit, credit * revenue)], axis=1)
    out = {names[k]: sums[k] for k in np.flatnonzero(np.bincount(key, minlength=len(names)))}
    untouched = pairs.n == 0
    if untouched.any():
        alone = np.tile([float(untouched.sum()), float(pairs.revenue[untouched].sum())], len(MODELS))
        out[NO_TOUCH] = out[NO_TOUCH] + alone if NO_TOUCH in out else alone
    return out
