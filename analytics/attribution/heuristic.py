"""The five rule-based models over ``_a_pairs``, in one aggregation.

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

import duckdb
import pyarrow as pa

from analytics.attribution.options import NO_TOUCH, AttributionOptions
from analytics.attribution.pairs import PAIRS

MODELS = ("first", "last", "linear", "u_shaped", "time_decay")


def heuristic_credits(con: duckdb.DuckDBPyConnection, options: AttributionOptions) -> pa.Table:
    """key, then ``{model}_conversions`` and ``{model}_revenue`` for each of :data:`MODELS`."""
    sums = ", ".join(f"sum({m}) AS {m}_conversions, sum({m} * revenue) AS {m}_revenue" for m in MODELS)
    half = float(options.half_life_ms)
    return con.sql(f"""
        WITH weighted AS (
            SELECT conv, revenue, key, pos, n, pow(2.0, -(last_ts - ts) / {half!r}) AS w FROM {PAIRS}
        ), credit AS (
            SELECT coalesce(key, '{NO_TOUCH}') AS key, revenue,
                   CASE WHEN n = 0 OR pos = 1 THEN 1.0 ELSE 0.0 END AS first,
                   CASE WHEN n = 0 OR pos = n THEN 1.0 ELSE 0.0 END AS last,
                   CASE WHEN n = 0 THEN 1.0 ELSE 1.0 / n END AS linear,
                   CASE WHEN n <= 1 THEN 1.0 WHEN n = 2 THEN 0.5 WHEN pos = 1 OR pos = n THEN 0.4
                        ELSE 0.2 / (n - 2) END AS u_shaped,
                   CASE WHEN n = 0 THEN 1.0 ELSE w / sum(w) OVER (PARTITION BY conv) END AS time_decay
            FROM weighted
        )
        SELECT key, {sums} FROM credit GROUP BY key
    """).to_arrow_table()  # noqa: S608 - the module's own names and a float literal
