"""A tag's profile-reading ``if:`` in SQL, for the common case: counts, sums and the score.

When the condition reads only ``profile.agg.<x>`` of count and sum aggregates, ``profile.score``,
``first_seen``, ``last_seen`` and ``last_interaction`` (the shipped ``high_intent`` and
``price_sensitive``), each value as of every candidate event is a running total over the
person's events in (time, partition, offset) order, as :mod:`analytics.history.replay` defines
"as of the event":

* a windowed count or sum: the running total at the candidate minus the running total before
  its window's first bucket (an ASOF join on time);
* the score: the running decayed points (``replay._candidates``), plus the attribute points of
  the traits as of the candidate (ASOF joins; the rules' own conditions evaluated once per
  distinct set of trait values), capped, rounded to 3 places.

The condition is then translated (``cel_sql.translate`` with these columns) and whole tag rules
stay in DuckDB; anything else goes to the Python replay. An identify at the same millisecond as
a candidate counts for it here whatever their offsets (the replay orders them by offset).
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from analytics.history import aggregates, base, cel_sql, scores
from analytics.history.aggregates import Plan
from analytics.history.cel_sql import DOUBLE, INT, Column
from analytics.history.cel_sql import quote as q
from profiles.rules.model import Rules

SIMPLE = frozenset({"agg", "score", "first_seen", "last_seen", "last_interaction"})
VALUES = "h_tag_values"  # the candidates with their profile values (replay._candidates)


def applies(rules: Rules, needs: dict[str, frozenset[str] | None], plans: dict[str, Plan]) -> bool:
    """Whether the condition reads only what this module computes."""
    if not set(needs) <= SIMPLE:
        return False
    if "agg" in needs:
        names = needs["agg"]
        if names is None or any(n not in plans or plans[n].rule.kind != "n" for n in names):
            return False
    return "score" not in needs or rules.score is None or rules.attribute_traits is not None


def columns(con: duckdb.DuckDBPyConnection, rules: Rules, needs: dict[str, frozenset[str] | None],
            plans: dict[str, Plan], joins: str) -> dict[str, Column]:
    """Add the values to ``h_tag_values``; the ``profile`` columns the translator reads."""
    out = {"first_seen": Column("first_seen", INT), "last_seen": Column("ts", INT),
           "last_interaction": Column("li", INT, True)}
    for i, name in enumerate(sorted(needs.get("agg") or ())):
        column = f"agg_{i}"
        _aggregate(con, plans[name], column, joins)
        out[f"agg.{name}"] = Column(column, INT if plans[name].rule.op == "count" else DOUBLE)
    if "score" in needs:
        _score(con, rules)
        out["score"] = Column("score", DOUBLE)
    return out


def _add(con: duckdb.DuckDBPyConnection, table: str, column: str) -> None:
    con.execute(f"CREATE OR REPLACE TEMP TABLE {VALUES} AS SELECT v.*, t.{column} "
                f"FROM {VALUES} v LEFT JOIN {table} t USING (rid)")
    con.execute(f"DROP TABLE {table}")


def _aggregate(con: duckdb.DuckDBPyConnection, plan: Plan, column: str, joins: str) -> None:
    rule = plan.rule
    value = "1" if rule.op == "count" else "num"
    people = f"SELECT DISTINCT survivor FROM {VALUES}"
    contributions = aggregates.contributions(plan, joins, f"survivor IN ({people})")  # those people's alone
    mine = f"SELECT survivor, ts, p, o, {value} AS v FROM ({contributions})"
    running = f"""
        SELECT rid, acc FROM (
            SELECT cand, rid, sum(v) OVER (PARTITION BY survivor ORDER BY ts, p, o, cand
                                           ROWS UNBOUNDED PRECEDING) AS acc
            FROM (SELECT *, 0 AS cand, CAST(NULL AS BIGINT) AS rid FROM ({mine})
                  UNION ALL SELECT survivor, ts, p, o, 0, 1, rid FROM {VALUES}))
        WHERE cand = 1"""
    if rule.window_ms > 0 and rule.bucket_ms > 0:
        span = -(-rule.window_ms // rule.bucket_ms)
        before = f"""
            SELECT survivor, ts,
                   sum(v) OVER (PARTITION BY survivor ORDER BY ts ROWS UNBOUNDED PRECEDING) AS acc
            FROM (SELECT survivor, ts, sum(v) AS v FROM ({mine}) GROUP BY survivor, ts)"""
        sql = f"""
            SELECT c.rid, coalesce(r.acc, 0) - coalesce(b.acc, 0) AS {column}
            FROM (SELECT rid, survivor, (ts // {rule.bucket_ms} - {span - 1}) * {rule.bucket_ms} AS lo
                  FROM {VALUES}) c
            LEFT JOIN ({running}) r USING (rid)
            ASOF LEFT JOIN ({before}) b ON c.survivor = b.survivor AND c.lo > b.ts"""
    else:
        sql = (f"SELECT c.rid, coalesce(r.acc, 0) AS {column} FROM {VALUES} c "
               f"LEFT JOIN ({running}) r USING (rid)")
    cast = "BIGINT" if rule.op == "count" else "DOUBLE"
    con.execute(f"CREATE OR REPLACE TEMP TABLE h_tag_agg AS "
                f"SELECT rid, CAST({column} AS {cast}) AS {column} FROM ({sql})")
    _add(con, "h_tag_agg", column)


def _score(con: duckdb.DuckDBPyConnection, rules: Rules) -> None:
    spec = rules.score
    names = [n for n in (rules.attribute_traits or ()) if rules.options.keep_traits is None
             or n in rules.options.keep_traits] if spec is not None and spec.attributes else []
    people = f"SELECT DISTINCT survivor FROM {VALUES}"
    joins, picked = [], []
    for i, name in enumerate(names):
        path = q(f'$."{name}"')
        joins.append(f"""ASOF LEFT JOIN (
            SELECT survivor, ts, CAST(json_extract(e_traits, {path}) AS VARCHAR) AS v FROM {base.TABLE}
            WHERE e_type = 'identify' AND json_exists(e_traits, {path}) AND survivor IN ({people})
            QUALIFY row_number() OVER (PARTITION BY survivor, ts ORDER BY _partition DESC, _offset DESC) = 1
        ) t{i} ON c.survivor = t{i}.survivor AND c.ts >= t{i}.ts""")
        picked.append(f"t{i}.v AS t{i}")
    listed = "".join(f", {p}" for p in picked)
    con.execute(f"CREATE OR REPLACE TEMP TABLE h_tag_traits AS SELECT c.rid{listed} FROM {VALUES} c "
                + " ".join(joins))
    attribute = scores.AttributePoints(rules)
    keys = [f"t{i}" for i in range(len(names))]
    distinct = con.execute(f"SELECT DISTINCT {', '.join(keys) or 'NULL'} FROM h_tag_traits").fetchall()
    points = [attribute({n: v for n, v in zip(names, row, strict=False) if v is not None})
              for row in distinct]
    table = {k: pa.array([row[i] for row in distinct], pa.string()) for i, k in enumerate(keys)}
    con.register("h_tag_points", pa.table({**table, "points": pa.array(points, pa.float64())}))
    match = " AND ".join(f"t.{k} IS NOT DISTINCT FROM m.{k}" for k in keys) or "TRUE"
    cap = f"least({{}}, {float(spec.cap)!r})" if spec is not None and spec.cap is not None else "{}"
    total = cap.format("coalesce(v.behaviour, 0.0) + m.points")
    con.execute(f"CREATE OR REPLACE TEMP TABLE h_tag_score AS SELECT t.rid, round({total}, 3) AS score "
                f"FROM h_tag_traits t JOIN h_tag_points m ON {match} JOIN {VALUES} v USING (rid)")
    con.unregister("h_tag_points")
    con.execute("DROP TABLE h_tag_traits")
    _add(con, "h_tag_score", "score")


def holds(con: duckdb.DuckDBPyConnection, source: str, profile: dict[str, Column],
          ) -> list[tuple[str, str, int]] | None:
    """``(survivor, tag, latest time)`` where the translated condition holds; None if it does not
    translate."""
    done = cel_sql.translate(source, profile=profile)
    if done is None:
        return None
    test = f"({cel_sql.as_bool(done[0])} IS TRUE)"
    rows = con.execute(f"SELECT survivor, tag, max(ts) FROM {VALUES} WHERE {test} "
                       "GROUP BY survivor, tag").fetchall()
    return [(s, t, int(ts)) for s, t, ts in rows]
