"""Every person's aggregates, behaviour score and last interaction as of a time, in one pass.

Verify needs, per survivor, each aggregate's value as of a time, the stored behaviour score and
the last interaction. Each is a fold of the person's events, so one ``GROUP BY survivor`` over
``h_events`` answers them all, each aggregate under its own ``FILTER`` (a query per aggregate
over a table of its contributions cost more, in all, than the table of events itself). The
semantics of :func:`aggregates.as_of`:

* a rule's contributions are the rows its ``on:``/``where:`` select with a usable value (the
  value is computed on those rows alone); a windowed rule reads the buckets of
  ``window_range(as_of)``, a lifetime rule every bucket;
* a fold over no contribution is NULL (``count`` too): the person has no value for the rule,
  as when :func:`aggregates.as_of` has no row for them;
* the behaviour score (``scores.py``): points decayed to the latest event time of all, then
  moved to each person's own latest point event (both exponents stay far from a double's range
  for any history shorter than a thousand half-lives).

Unique counts are left out (:func:`columns` says which): their bits come from Python over the
distinct values, so they keep their contribution table. Sums may differ from one query per rule
in the last bits (another summation order), as they may between two runs of either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from analytics.history import aggregates, base
from analytics.history.aggregates import Plan
from analytics.history.cel_sql import quote
from profiles import aggregates as agg


@dataclass(frozen=True)
class Score:
    """The behaviour points per event (``scores.points_sql``) and their half-life."""

    points: str
    half_life_ms: int


_KEYS = ("survivor", "ts", "_partition", "_offset")


def folded(plans: list[Plan]) -> list[Plan]:
    """The plans this pass folds (every one but unique counts)."""
    return [p for p in plans if p.kind != "u"]


def _in_window(p: Plan, as_of_ms: int) -> str:
    rule = p.rule
    if rule.window_ms > 0 and rule.bucket_ms > 0:
        lo, hi = agg.window_range(as_of_ms, rule.window_ms, rule.bucket_ms)
        return f" AND ts // {rule.bucket_ms} BETWEEN {lo} AND {hi}"
    return ""


def _rule(i: int, p: Plan, as_of_ms: int) -> tuple[str, str, str]:
    """Plan ``i`` as (its row's value ``v<i>``, the contribution ``x<i>`` computed from it, the
    aggregate ``a<i>``)."""
    rule, window = p.rule, _in_window(p, as_of_ms)
    if rule.op == "count":
        count = f"nullif(count(*) FILTER (WHERE x{i}{window}), 0)"
        return f"({p.match}) IS TRUE AS v{i}", f"v{i} AS x{i}", count
    assert p.value is not None
    value = f"CASE WHEN ({p.match}) IS TRUE THEN {p.value.text} END AS v{i}"
    num, vj = aggregates.checked(p, f"v{i}")
    if p.kind in ("n", "mn", "mx"):
        fold = {"n": "sum", "mn": "min", "mx": "max"}[p.kind]
        return value, f"{num} AS x{i}", f"{fold}(x{i}) FILTER (WHERE x{i} IS NOT NULL{window})"
    fold = "min" if p.kind == "f" else "max"
    stamped = f"{{'ts': ts, 'p': _partition, 'o': _offset, 'v': x{i}}}"  # the order of aggregates._fold_sql
    return value, f"{vj} AS x{i}", f"({fold}({stamped}) FILTER (WHERE x{i} IS NOT NULL{window})).v"


def as_of(con: duckdb.DuckDBPyConnection, joins: str, plans: list[Plan], as_of_ms: int, *,
          score: Score | None = None, interactions: Iterable[str] | None = None) -> pa.Table:
    """One row per survivor, in survivor order: ``survivor``, ``a<i>`` per plan of
    :func:`folded` (in order; NULL: no value; a first/last is its value's JSON text),
    ``behaviour``/``ref`` (the stored behaviour score, NULL without points) with ``score``,
    ``li`` (the latest event of these types) with ``interactions``."""
    rows, checks, folds = list(_KEYS), list(_KEYS), []
    for i, p in enumerate(folded(plans)):
        row, check, fold = _rule(i, p, as_of_ms)
        rows.append(row)
        checks.append(check)
        folds.append(f"{fold} AS a{i}")
    if score is not None:
        ((top,),) = con.execute(f"SELECT coalesce(max(ts), 0) FROM {base.TABLE}").fetchall()
        hl = float(score.half_life_ms) if score.half_life_ms > 0 else None
        decay = f"pow(2.0, (ts - {int(top)}) / {hl!r})" if hl else "1.0"
        rows.append(f"{score.points} AS pts")
        checks.append("pts")
        folds += [f"sum(pts * {decay}) FILTER (WHERE pts <> 0) AS moved",
                  "max(ts) FILTER (WHERE pts <> 0) AS ref"]
    if interactions is not None:
        types = ", ".join(quote(t) for t in sorted(interactions)) or "NULL"
        rows.append(f"e_type IN ({types}) AS inter")
        checks.append("inter")
        folds.append("max(ts) FILTER (WHERE inter) AS li")
    source = f"SELECT {', '.join(rows)} FROM {base.TABLE}{joins}"
    checked = f"SELECT {', '.join(checks)} FROM ({source})"
    table = con.sql(f"SELECT {', '.join(['survivor', *folds])} FROM ({checked}) "
                    "GROUP BY survivor ORDER BY survivor").to_arrow_table()
    if score is None:
        return table
    moved = table.column("moved")
    if hl:  # moved to each person's own latest point event: the stored (value, ref)
        pairs = zip(moved.to_pylist(), table.column("ref").to_pylist(), strict=True)
        values = [None if v is None else v * 2.0 ** ((int(top) - r) / hl) for v, r in pairs]
        return table.append_column("behaviour", pa.array(values, pa.float64()))
    return table.append_column("behaviour", moved)
