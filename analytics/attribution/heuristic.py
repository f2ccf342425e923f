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
import pyarrow as pa

from analytics.attribution.journeys import Journeys
from analytics.attribution.options import NO_TOUCH, AttributionOptions
from analytics.attribution.pairs import Pairs

MODELS = ("first", "last", "linear", "u_shaped", "time_decay")


def heuristic_credits(journeys: Journeys, pairs: Pairs, keys: np.ndarray, names: list[str],
                      options: AttributionOptions) -> pa.Table:
    """key, then ``{model}_conversions`` and ``{model}_revenue`` for each of :data:`MODELS`: a row
    per key some conversion credits, and ``(none)`` when a conversion had no touch."""
    names = [*names, NO_TOUCH] if NO_TOUCH not in names else names
    none = names.index(NO_TOUCH)
    n, pos = pairs.n[pairs.conv], pairs.pos
    last_ts = np.zeros(len(pairs.n), dtype=np.int64)
    last_ts[pairs.n > 0] = journeys.ts[pairs.at[pos == n]]
    weight = np.power(2.0, -(last_ts[pairs.conv] - journeys.ts[pairs.at]) / float(options.half_life_ms))
    credits = {
        "first": (pos == 1).astype(np.float64),
        "last": (pos == n).astype(np.float64),
        "linear": 1.0 / n,
        "u_shaped": np.select([n == 1, n == 2, (pos == 1) | (pos == n)], [1.0, 0.5, 0.4],
                              0.2 / np.maximum(n - 2, 1)),
        "time_decay": weight / np.bincount(pairs.conv, weights=weight, minlength=len(pairs.n))[pairs.conv],
    }
    key, revenue = keys[pairs.at], pairs.revenue[pairs.conv]
    untouched = pairs.n == 0
    alone = (float(untouched.sum()), float(pairs.revenue[untouched].sum()))
    shown = np.bincount(key, minlength=len(names)) > 0
    shown[none] = shown[none] or bool(untouched.any())
    data: dict[str, pa.Array] = {"key": pa.array(np.array(names, dtype=object)[shown], pa.string())}
    for model, credit in credits.items():
        for what, values in (("conversions", credit), ("revenue", credit * revenue)):
            sums = np.bincount(key, weights=values, minlength=len(names))
            sums[none] += alone[0] if what == "conversions" else alone[1]
            data[f"{model}_{what}"] = pa.array(sums[shown], pa.float64())
    return pa.table(data)
