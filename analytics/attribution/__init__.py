"""Multi-touch attribution over the lake: every model side by side.

``attribution(con, options)`` reads the ``events`` and ``identities`` views of
``connectors.lake.query.connect`` and returns one row per channel (or campaign) with each
model's conversions and revenue: first, last, linear, U-shaped (40/20/40), time decay
(``heuristic``) and the Markov-chain removal effect (``markov``). Conversions no touch preceded
are the row ``(none)`` under every model, so each model's column sums to the conversions.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from analytics.attribution.heuristic import COLUMNS as HEURISTIC_COLUMNS
from analytics.attribution.heuristic import MODELS as HEURISTIC_MODELS
from analytics.attribution.markov import markov_credits, removal_effects, transitions
from analytics.attribution.options import BY, NO_TOUCH, AttributionOptions
from analytics.attribution.shards import SHARDS, tally
from analytics.touches import classified_rows

MODELS = (*HEURISTIC_MODELS, "markov")

__all__ = ["BY", "MODELS", "NO_TOUCH", "AttributionOptions", "attribution", "long_form", "measure",
           "removal_effects", "rounded", "transitions"]


def attribution(con: duckdb.DuckDBPyConnection, options: AttributionOptions | None = None) -> pa.Table:
    """key (the channel or campaign), then ``{model}_conversions`` and ``{model}_revenue`` for
    each of :data:`MODELS`; rows by linear conversions (most first), ``(none)`` last."""
    options = options or AttributionOptions()
    [(threads,)] = con.execute("SELECT current_setting('threads')").fetchall()
    total = tally(classified_rows(con, options.conversion, options.rules, SHARDS), options, int(threads))
    rows = {key: dict(zip(HEURISTIC_COLUMNS, map(float, sums), strict=True))
            for key, sums in total.sums.items()}
    for key, conversions, revenue in markov_credits(total.transitions(), total.touched, total.touched_revenue,
                                                    total.untouched, total.untouched_revenue):
        rows.setdefault(key, {}).update(markov_conversions=conversions, markov_revenue=revenue)
    columns = [f"{m}_{what}" for m in MODELS for what in ("conversions", "revenue")]
    order = sorted(rows, key=lambda k: (k == NO_TOUCH, -rows[k].get("linear_conversions", 0.0), k))
    data: dict[str, pa.Array] = {options.by: pa.array(order, pa.string())}
    for column in columns:
        data[column] = pa.array([float(rows[k].get(column) or 0.0) for k in order], pa.float64())
    return pa.table(data)


def long_form(table: pa.Table) -> pa.Table:
    """The wide table as rows of (key, model, conversions, revenue), for charts."""
    key = table.column_names[0]
    out: dict[str, list[object]] = {key: [], "model": [], "conversions": [], "revenue": []}
    for row in table.to_pylist():
        for model in MODELS:
            out[key].append(row[key])
            out["model"].append(model)
            out["conversions"].append(row[f"{model}_conversions"])
            out["revenue"].append(row[f"{model}_revenue"])
    return pa.table(out)


def measure(table: pa.Table, what: str) -> pa.Table:
    """The key and one column per model of ``what`` (``conversions`` or ``revenue``): half the
    width, for people reading a terminal."""
    key = table.column_names[0]
    return pa.table({key: table.column(key), **{m: table.column(f"{m}_{what}") for m in MODELS}})


def rounded(table: pa.Table, digits: int = 2) -> pa.Table:
    """Every floating-point column as a decimal of ``digits`` places, for reading (credits are
    fractions of conversions; a rounded float still prints as 1708.1100000000001)."""
    decimal = pa.decimal128(38, digits)
    return pa.table({name: pc.round(column, digits).cast(decimal) if pa.types.is_floating(column.type)
                     else column for name, column in zip(table.column_names, table.columns, strict=True)})
