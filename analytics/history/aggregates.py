"""Aggregates from history with the stream's bucket semantics (``profiles/aggregates.py``).

Each rule is one SQL pass over ``h_events``: its *contributions* (the events its ``on:`` and
``where:`` select, with a usable value: an amount for sum/min/max, non-null for first/last/unique,
as ``profiles/updates.py`` requires) filed in bucket ``ts // bucket_ms``, then folded per survivor
over the buckets ``window_range(as_of)`` reads. The folds are the stream's:

* count, sum, min, max: exact (a sum may differ in the last digits: the stream rounds each
  bucket to 15 significant digits, SQL sums once, so sums are compared with a tolerance);
* first/last: the earliest/latest by (event time, partition, offset): the stream keeps the first
  applied at equal times, which is offset order within a partition;
* unique: the same 64-bit map (``profiles.aggregates.unique_bit``, CRC-32 of the value's text,
  computed in Python over the distinct values and joined back), so estimates compare exactly.

:func:`as_of` answers the values of a time (verify; :mod:`analytics.history.fold` folds all but unique
counts in one pass); :func:`applied_buckets` the bucket values the stream would store (backfill),
only from the events a profile has already applied.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from analytics.history import base, cel_sql
from analytics.history.cel_sql import BOOL, DOUBLE, INT, JSON, LIST, NULL, STRING, Sql
from analytics.history.expressions import Expressions, on_sql
from profiles import aggregates as agg
from profiles import jsonsafe
from profiles.rules.model import AggregateRule

_AMOUNT = agg.MAX_AMOUNT


def amount(x: Sql) -> str:
    """DOUBLE where the value is an amount sum/min/max take (``aggregates.is_amount``), else NULL."""
    if x.type == INT:
        return f"(CASE WHEN abs({x.text}) <= {_AMOUNT} THEN CAST({x.text} AS DOUBLE) END)"
    if x.type == DOUBLE:
        return f"(CASE WHEN isfinite({x.text}) AND abs({x.text}) <= {_AMOUNT} THEN {x.text} END)"
    if x.type == JSON:
        number = (f"(CASE WHEN json_type({x.text}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
                  f"THEN CAST({x.text} AS DOUBLE) END)")
        return f"(CASE WHEN abs({number}) <= {_AMOUNT} THEN {number} END)"
    return "CAST(NULL AS DOUBLE)"


def value_json(x: Sql) -> str:
    """The value as JSON text, NULL when absent, CEL null or an error (the stream skips those)."""
    if x.type == NULL:
        return "CAST(NULL AS VARCHAR)"
    if x.type == JSON:
        return f"(CASE WHEN json_type({x.text}) <> 'NULL' THEN {cel_sql.json_text(x)} END)"
    if x.type in (STRING, INT, DOUBLE, BOOL, LIST):
        return f"CAST(to_json({x.text}) AS VARCHAR)"
    raise ValueError(f"no JSON for {x.type}")


@dataclass(frozen=True)
class Plan:
    """One aggregate rule as SQL over ``h_events``."""

    rule: AggregateRule
    match: str  # on: and where:
    value: Sql | None  # None for count
    table: str  # h_contrib_<n>, filled by prepare

    @property
    def kind(self) -> str:
        return self.rule.kind


def plan(exprs: Expressions, rules: list[AggregateRule]) -> list[Plan]:
    """SQL for each rule (before ``h_events`` exists: the expressions say what it must hold)."""
    out = []
    for i, rule in enumerate(rules):
        on = on_sql(rule.on)
        match = f"({on} AND {exprs.condition(rule.where, on)})"
        value = exprs.value(rule.value, match) if rule.op != "count" and rule.value is not None else None
        out.append(Plan(rule, match, value, f"h_contrib_{i}"))
    return out


def checked(p: Plan, value: str) -> tuple[str, str]:
    """(num, vj) of a contribution whose value (``p.value``'s SQL) is the column ``value``: the
    amount of a sum/min/max (else NULL), the JSON text of any other value (else NULL). Computed
    over the value once evaluated: checking an amount names the value thrice."""
    rule = p.rule
    if rule.op == "count" or p.value is None:
        return "CAST(1 AS DOUBLE)", "CAST(NULL AS VARCHAR)"
    x = Sql(value, p.value.type, p.value.nullable)
    if p.kind in ("n", "mn", "mx"):
        return amount(x), "CAST(NULL AS VARCHAR)"
    return "CAST(NULL AS DOUBLE)", value_json(x)


def contributions(p: Plan, joins: str, where: str = "TRUE") -> str:
    """SQL of the rule's contributions (survivor, oneid, ts, p, o, idx, num, vj) among the events
    ``where`` (SQL over ``h_events``) lets through; ``joins``: the evaluated expressions' tables."""
    rule = p.rule
    num, vj = checked(p, "v")
    if rule.op == "count":
        valid = "TRUE"
    else:
        valid = "num IS NOT NULL" if p.kind in ("n", "mn", "mx") else "vj IS NOT NULL"
    value = p.value.text if p.value is not None and rule.op != "count" else "NULL"
    idx = f"ts // {rule.bucket_ms}" if rule.bucket_ms > 0 else "0"
    return f"""
        SELECT * FROM (
            SELECT survivor, oneid, ts, p, o, idx, {num} AS num, {vj} AS vj FROM (
                SELECT survivor, oneid, ts, _partition AS p, _offset AS o, CAST({idx} AS BIGINT) AS idx,
                       {value} AS v
                FROM {base.TABLE}{joins} WHERE {p.match} AND {where})
        ) WHERE {valid}"""


def prepare(con: duckdb.DuckDBPyConnection, exprs: Expressions, plans: list[Plan]) -> None:
    """Materialize each rule's contributions: survivor, oneid, ts, p, o, idx, num, vj (and bit)."""
    for p in plans:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {p.table} AS {contributions(p, exprs.joins())}")
        if p.kind == "u":
            _unique_bits(con, p.table)


def _unique_bits(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Add ``bit``: the stream's bit of each value, computed once per distinct value."""
    keys = [k for (k,) in con.execute(f"SELECT DISTINCT vj FROM {table}").fetchall()]
    bits = pa.table({"k": pa.array(keys, pa.string()),
                     "b": pa.array([1 << agg.unique_bit(json.loads(k)) for k in keys], pa.uint64())})
    con.register("h_bits", bits)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS "
                f"SELECT c.*, m.b AS bit FROM {table} c JOIN h_bits m ON m.k = c.vj")
    con.unregister("h_bits")


def _fold_sql(kind: str, op: str) -> str:
    if op == "count":
        return "count(*)"
    return {
        "n": "sum(num)",
        "mn": "min(num)",
        "mx": "max(num)",
        "f": "min({'ts': ts, 'p': p, 'o': o, 'v': vj})",
        "l": "max({'ts': ts, 'p': p, 'o': o, 'v': vj})",
        "u": "bit_or(bit)",
    }[kind]


def decode(op: str, value: Any) -> Any:
    """An SQL fold as the stream's reader answers it (``aggregates.fold``)."""
    if value is None:
        return 0 if op in ("count", "sum", "unique") else None
    if op == "count":
        return int(value)
    if op == "sum":
        return float(value)
    if op in ("first", "last"):
        return json.loads(value["v"])
    if op == "unique":
        return agg.unique_estimate(int(value))
    return value


def as_of(con: duckdb.DuckDBPyConnection, p: Plan, as_of_ms: int) -> pa.Table:
    """``(survivor, value)`` of one rule as of a time, for survivors with contributions in range."""
    rule = p.rule
    lo, hi = agg.window_range(as_of_ms, rule.window_ms, rule.bucket_ms)
    where = f"WHERE idx BETWEEN {lo} AND {hi}" if rule.window_ms > 0 and rule.bucket_ms > 0 else ""
    return con.sql(f"SELECT survivor, {_fold_sql(p.kind, rule.op)} AS value FROM {p.table} {where} "
                   "GROUP BY survivor").to_arrow_table()


def applied_buckets(con: duckdb.DuckDBPyConnection, p: Plan, applied: str) -> pa.Table:
    """``(survivor, idx, value)`` of each bucket as the stream would store it, over the
    contributions a profile has applied: ``applied`` (survivor, oneid, p, applied, oldest) names,
    per survivor and stamped OneID, the last offset applied of each partition, and the oldest
    bucket kept (NULL: every one). A contribution counts when some guard of its survivor, OneID
    and partition is at or above its offset: at or below the highest."""
    return con.sql(f"""
        SELECT c.survivor, c.idx, {_fold_sql(p.kind, p.rule.op)} AS value
        FROM {p.table} c JOIN (
            SELECT survivor AS g_survivor, oneid AS g_oneid, p AS g_p, max(applied) AS g_applied,
                   any_value(oldest) AS g_oldest
            FROM {applied} GROUP BY survivor, oneid, p
        ) g ON g.g_survivor = c.survivor AND g.g_oneid = c.oneid AND g.g_p = c.p
        WHERE c.o <= g.g_applied AND (g.g_oldest IS NULL OR c.idx >= g.g_oldest)
        GROUP BY c.survivor, c.idx""").to_arrow_table()


def encode_bucket(p: Plan, value: Any) -> str:
    """A bucket's stored text (``aggregates.encode`` of the folded contribution)."""
    kind = p.kind
    if p.rule.op == "count":
        return str(int(value))
    if kind in ("n", "mn", "mx"):
        return agg.format_number(value)
    if kind in ("f", "l"):
        return agg.stamped(int(value["ts"]), jsonsafe.dumps(json.loads(value["v"])))
    return agg.encode("u", int(value))

