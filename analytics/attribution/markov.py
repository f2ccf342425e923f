"""The data-driven model: a first-order Markov chain over journeys and each key's removal effect.

Journeys are the converting ones (each counted conversion's touches, as the other models see
them) and the lost ones: a person's touches that no conversion followed within the lookback,
split where the person converted in between (touches share a lost journey when the same next
conversion follows them, or none: one ``ASOF`` join, no window over every touch and
conversion). The chain's states are the keys (channels or campaigns) plus start, conversion and
null; SQL counts the transitions (a handful of rows however many events), Python solves the
chain.

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

import duckdb
import pyarrow as pa

from analytics.attribution.options import NO_TOUCH, AttributionOptions
from analytics.attribution.pairs import PAIRS
from analytics.touches import CONVERSIONS, TOUCHES


@dataclass(frozen=True)
class Transition:
    """``count`` journeys stepped from ``source`` (None: the start) to ``target`` (None: the end,
    a conversion when ``converted``)."""

    source: str | None
    target: str | None
    converted: bool
    count: int


def transitions(con: duckdb.DuckDBPyConnection, options: AttributionOptions) -> list[Transition]:
    """Every transition of the converting and lost journeys, counted (needs ``_a_pairs``)."""
    lookback = int(options.lookback_ms)
    window = []
    if options.conversion.since_ms is not None:
        window.append(f"ts >= {int(options.conversion.since_ms) - lookback}")
    if options.conversion.until_ms is not None:
        window.append(f"ts <= {int(options.conversion.until_ms)}")
    in_range = " AND ".join(window) or "true"
    rows = con.sql(f"""
        WITH nexts AS (
            SELECT t.person, t.ts, t.source, t.message_id, {options.key_sql('t')} AS key, c.ts AS next_conv
            FROM {TOUCHES} t ASOF LEFT JOIN (SELECT person, ts FROM {CONVERSIONS}) c
              ON t.person = c.person AND c.ts >= t.ts
        ), lost AS (
            SELECT lag(key) OVER j AS src, key, lead(key) OVER j IS NULL AS last
            FROM nexts
            WHERE (next_conv IS NULL OR next_conv - ts > {lookback}) AND {in_range}
            WINDOW j AS (PARTITION BY person, next_conv ORDER BY ts, source, message_id)
        ), won AS (
            SELECT lag(key) OVER (PARTITION BY conv ORDER BY pos) AS src, key, pos, n FROM {PAIRS} WHERE n > 0
        ), steps AS (
            SELECT src, key AS dst, false AS converted FROM lost
            UNION ALL SELECT key, NULL, false FROM lost WHERE last
            UNION ALL SELECT src, key, false FROM won
            UNION ALL SELECT key, NULL, true FROM won WHERE pos = n
        )
        SELECT src, dst, converted, count(*) AS n FROM steps GROUP BY ALL
    """).fetchall()  # noqa: S608 - the module's own names and whole numbers
    return [Transition(src, dst, bool(converted), int(n)) for src, dst, converted, n in rows]


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


def markov_credits(con: duckdb.DuckDBPyConnection, options: AttributionOptions) -> pa.Table:
    """key, markov_conversions, markov_revenue (untouched conversions under ``(none)``; needs
    ``_a_pairs``)."""
    effects = removal_effects(transitions(con, options))
    touched, touched_revenue, untouched, untouched_revenue = con.sql(f"""
        SELECT count(*) FILTER (WHERE n > 0), coalesce(sum(revenue) FILTER (WHERE n > 0), 0.0),
               count(*) FILTER (WHERE n = 0), coalesce(sum(revenue) FILTER (WHERE n = 0), 0.0)
        FROM {PAIRS} WHERE pos <= 1
    """).fetchall()[0]  # noqa: S608 - the module's own name
    total = sum(effects.values())
    keys = sorted(effects)
    shares = [effects[k] / total if total else 0.0 for k in keys]
    conversions = [touched * s for s in shares]
    revenue = [touched_revenue * s for s in shares]
    if untouched:
        keys.append(NO_TOUCH)
        conversions.append(float(untouched))
        revenue.append(float(untouched_revenue))
    return pa.table({"key": pa.array(keys, pa.string()),
                     "markov_conversions": pa.array(conversions, pa.float64()),
                     "markov_revenue": pa.array(revenue, pa.float64())})
