"""Funnels: how many people went through ordered steps within a conversion window, and how fast.

People are survivors (``identities``: what a merged OneID did counts for the person it joined).
An *attempt* starts at an event of the first step (its *anchor*):

- **sequential** (default): each next step is the earliest event of that step strictly later than
  the previous step's event (events of one millisecond are simultaneous and never follow one
  another, so one event, or the copies the lake may hold of it, never counts for two steps);
  the attempt reaches step *k* when that event lies within ``window`` of the anchor;
- **any order**: the anchor is any event of any step, and the attempt reaches step *k* when each
  of steps 1..*k* has an event at or after the anchor and within ``window`` of it (one event may
  count for every step it matches). Step *k* is complete at the latest of those events.

Each person counts once, with their best attempt: the furthest reached, the earliest anchor
among equals (among simultaneous anchors, the least ``by`` value, none last). Per step: people,
conversion from the first step and from the previous one, drop-off, and the median time from
the previous step over the people who reached the step.
A breakdown (``by``) groups people by a property of their best attempt's anchor event
(``(none)`` when it has none), so groups add up to the whole.

Set-based: only the events matching a step are read past the filter, never deduplicated (their
order makes copies one event), and the earliest next event of each step is an ``ASOF JOIN``
(see :func:`_sequential` for why a few suffice whatever the number of first-step events).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from analytics.exceptions import AnalyticsError
from analytics.people import event_source, with_person
from analytics.steps import Step, match_sql, parse_step, property_sql
from profiles.durations import DAY_MS, parse_duration

DEFAULT_WINDOW_MS = 7 * DAY_MS
ALL = "(all)"
NONE = "(none)"
MAX_STEPS = 16


@dataclass(frozen=True)
class StepCount:
    """One step of one funnel: who reached it and the median time it took from the step before."""

    step: int  # 1-based
    label: str
    people: int
    median_ms: float | None  # from the previous step; None for the first or when nobody reached it


@dataclass(frozen=True)
class Funnel:
    group: str  # ALL, a property value, or NONE
    steps: tuple[StepCount, ...]

    @property
    def entered(self) -> int:
        return self.steps[0].people

    def rows(self) -> list[dict[str, Any]]:
        """Per step: counts, conversion (from the first and the previous step), drop-off, median."""
        out, first, previous = [], self.steps[0].people, self.steps[0].people
        for s in self.steps:
            dropped = previous - s.people if s.step > 1 else 0
            out.append({
                "step": s.step, "name": s.label, "people": s.people,
                "conversion": s.people / first if first else None,
                "step_conversion": s.people / previous if previous else None,
                "dropped": dropped, "drop_off": dropped / previous if previous and s.step > 1 else 0.0,
                "median_s_from_previous": None if s.median_ms is None else s.median_ms / 1000,
            })
            previous = s.people
        return out


@dataclass(frozen=True)
class FunnelResult:
    steps: tuple[str, ...]
    window_ms: int
    any_order: bool
    by: str | None
    overall: Funnel
    groups: tuple[Funnel, ...]  # empty without ``by``; most people first

    def table(self) -> pa.Table:
        """Every funnel's rows (the overall one first, as group ``(all)``), shares rounded for reading."""
        rows = []
        for funnel in (self.overall, *self.groups):
            for row in funnel.rows():
                for name in ("conversion", "step_conversion", "drop_off"):
                    row[name] = None if row[name] is None else round(row[name], 4)
                if row["median_s_from_previous"] is not None:
                    row["median_s_from_previous"] = round(row["median_s_from_previous"], 1)
                rows.append(({"group": funnel.group} if self.by else {}) | row)
        return pa.Table.from_pylist(rows)


def funnel(con: duckdb.DuckDBPyConnection, steps: Sequence[str | Step], *,
           window: str | int = DEFAULT_WINDOW_MS, any_order: bool = False,
           by: str | None = None) -> FunnelResult:
    """The funnel of ``steps`` (spelled as in :mod:`analytics.steps`) over the lake's events.

    ``window``: from the anchor to the last step, a duration (``"7d"``) or milliseconds.
    """
    parsed = [s if isinstance(s, Step) else parse_step(s) for s in steps]
    if not 1 <= len(parsed) <= MAX_STEPS:
        raise AnalyticsError(f"a funnel has 1 to {MAX_STEPS} steps, not {len(parsed)}")
    try:
        window_ms = parse_duration(window) if isinstance(window, str) else int(window)
    except ValueError as exc:
        raise AnalyticsError(f"window: {exc}") from None
    if window_ms <= 0:
        raise AnalyticsError("window: must be longer than zero")
    try:
        sql, params = _sql(parsed, any_order, by, event_source(con))
    except duckdb.Error as exc:
        raise AnalyticsError(f"funnel query failed: {exc}") from None
    if "$window" in sql:
        params["window"] = window_ms
    try:
        rows = _asof_planned(con, sql, params)
    except duckdb.Error as exc:
        raise AnalyticsError(f"funnel query failed: {exc}") from None
    labels = tuple(s.label for s in parsed)
    [total] = [_funnel(labels, row[1:]) for row in rows if row[0]]
    groups = sorted((_funnel(labels, row[1:]) for row in rows if not row[0]),
                    key=lambda f: (-f.entered, f.group))
    return FunnelResult(labels, window_ms, any_order, by, total, tuple(groups))


def _asof_planned(con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run ``sql`` with its ASOF joins planned as ASOF joins.

    DuckDB runs an ASOF join as a nested loop when it estimates its left side under
    ``asof_loop_join_threshold`` rows (64); it estimates the anchors that have a step 2 after
    them at 2 rows when they are millions (400 s at 10M events instead of 5 s). The setting is
    the database's, so it is put back as it was."""
    [(threshold,)] = con.execute("SELECT current_setting('asof_loop_join_threshold')").fetchall()
    con.execute("SET asof_loop_join_threshold = 0")
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.execute(f"SET asof_loop_join_threshold = {int(threshold)}")


def _funnel(labels: tuple[str, ...], row: tuple[Any, ...]) -> Funnel:
    """One result row: the group, then (people, median) per step."""
    group, values = row[0], row[1:]
    steps = tuple(StepCount(k + 1, label, int(values[2 * k] or 0),
                            None if k == 0 or values[2 * k + 1] is None else float(values[2 * k + 1]))
                  for k, label in enumerate(labels))
    return Funnel(str(group), steps)


def _sql(steps: list[Step], any_order: bool, by: str | None, events: str) -> tuple[str, dict[str, Any]]:
    """The query: built from the module's own fragments and numbers; what a user typed (step names,
    the property) only ever travels as a named parameter (``noqa: S608`` below)."""
    predicates, params = match_sql(steps)
    n = len(steps)
    group = "NULL"
    if by:
        group, own = property_sql(by)
        params.update(own)
    # Each step strictly later than the one before: the copies the lake may hold of one event (a
    # replay after a crash) share its time, so they never follow one another and no deduplication
    # pass is needed.
    where = " OR ".join(predicates)
    source = with_person(f"(SELECT * FROM {events} WHERE oneid IS NOT NULL AND ({where}))")  # noqa: S608
    flags = ", ".join(f"{p} AS m{i}" for i, p in enumerate(predicates))
    ctes = [f"matched AS (SELECT person, timestamp AS ts, {flags}, {group} AS grp FROM {source})",  # noqa: S608
            *(f"s{i} AS (SELECT person, ts FROM matched WHERE m{i})" for i in range(n))]  # noqa: S608
    ctes += _any_order(n) if any_order else _sequential(n)
    measures = []
    for i in range(n):
        gap = "NULL" if i == 0 else f"median(c{i} - c{i - 1}) FILTER (WHERE reached >= {i + 1})"
        measures.append(f"count(*) FILTER (WHERE reached >= {i + 1}), {gap}")
    # one row for everybody (whole = true), and one per group with a breakdown
    each = ", ".join(measures)
    query = f"SELECT true AS whole, '{ALL}' AS g, {each} FROM best"  # noqa: S608
    if by:
        query += f" UNION ALL SELECT false, coalesce(grp, '{NONE}'), {each} FROM best GROUP BY grp"  # noqa: S608
    return "WITH " + ",\n".join(ctes) + "\n" + query, params


def _sequential(n: int) -> list[str]:
    """``best``: per person the reach, the anchor's group and each step's time (``c0``...).

    Anchors followed by the same next event of step 2 form a *run*: they share the rest of the
    chain, and a later anchor of a run reaches at least as far (it is closer to the chain). So
    the chain is found once per run, from its last anchor, and the furthest reach ``top`` of a
    person is the best of their runs'. The earliest anchor reaching ``top`` is then the earliest
    at or after ``need``, the earliest any run reaching ``top`` allows (``t_top - window``): an
    earlier anchor's own chain comes no later, so it reaches ``top`` as well.

    Only anchors before a person's last step-2 event need the ``ASOF JOIN`` (a sort); the rest
    (most first-step events: most people never reach step 2) form each person's last run, with
    no step 2 after it, found by a hash aggregate. Small joins after that, whatever the number of
    first-step events (every page view may be one).
    """
    if n == 1:
        return ["""first AS (SELECT person, min(struct_pack(ts := ts, grp := grp)) AS b
                   FROM matched WHERE m0 GROUP BY person)""",
                "best AS (SELECT person, 1 AS reached, b.grp AS grp, b.ts AS c0 FROM first)"]
    ctes = ["until AS (SELECT person, max(ts) AS until FROM s1 GROUP BY person)",
            """j AS (SELECT a.person, a.ts, a.grp, x.ts AS t1
               FROM (SELECT m.person, m.ts, m.grp FROM matched m JOIN until u ON u.person = m.person
                     WHERE m.m0 AND m.ts < u.until) a
               ASOF LEFT JOIN s1 x ON x.person = a.person AND x.ts > a.ts)""",
            """tail AS (SELECT m.person, max(m.ts) AS last, min(struct_pack(ts := m.ts, grp := m.grp)) AS b
               FROM matched m LEFT JOIN until u ON u.person = m.person
               WHERE m.m0 AND (u.until IS NULL OR m.ts >= u.until) GROUP BY m.person)""",
            """r1 AS (SELECT person, t1, max(ts) AS last FROM j GROUP BY person, t1
               UNION ALL SELECT person, CAST(NULL AS BIGINT), last FROM tail)"""]
    for i in range(2, n):
        ctes.append(f"""r{i} AS (SELECT r.*, x.ts AS t{i} FROM r{i - 1} r
            ASOF LEFT JOIN s{i} x ON x.person = r.person AND x.ts > r.t{i - 1})""")  # noqa: S608
    ok = [f"coalesce(t{i} - last <= $window, false)" for i in range(1, n)]
    reach = " + ".join(["1", *(f"({' AND '.join(ok[:i])})::INT" for i in range(1, n))])
    need = " ".join(f"WHEN {i + 1} THEN t{i} - $window" for i in range(1, n))
    ctes += [f"""runs AS (SELECT *, {reach} AS reach FROM r{n - 1})""",  # noqa: S608
             """tops AS (SELECT person, max(reach) AS top FROM runs GROUP BY person)""",
             f"""needs AS (SELECT person, top, min(CASE reach {need} END) AS need
                 FROM runs JOIN tops USING (person) WHERE reach = top GROUP BY person, top)""",  # noqa: S608
             # the earliest anchor at or after need; with top 1, the earliest of all (the tail's too)
             """picked AS (SELECT person, any_value(top) AS reached, min(b) AS b FROM (
                    SELECT j.person, n.top, struct_pack(ts := j.ts, grp := j.grp, t1 := j.t1) AS b
                    FROM j JOIN needs n ON n.person = j.person WHERE n.need IS NULL OR j.ts >= n.need
                    UNION ALL
                    SELECT t.person, n.top,
                           struct_pack(ts := t.b.ts, grp := t.b.grp, t1 := CAST(NULL AS BIGINT))
                    FROM tail t JOIN needs n ON n.person = t.person WHERE n.need IS NULL)
                 GROUP BY person)""",
             f"""best AS (SELECT p.person, p.reached, p.b.grp AS grp, p.b.ts AS c0,
                    {", ".join(f"r.t{i} AS c{i}" for i in range(1, n))}
                 FROM picked p LEFT JOIN runs r
                    ON r.person = p.person AND r.t1 IS NOT DISTINCT FROM p.b.t1)"""]  # noqa: S608
    return ctes


def _any_order(n: int) -> list[str]:
    """``best`` for any order: per anchor (every matched event), each step's earliest event at
    or after it; the best attempt by reach, then the earliest anchor."""
    ctes, previous = [], "matched"
    for i in range(n):
        ctes.append(f"""a{i} AS (SELECT p.*, x.ts AS t{i} FROM {previous} p
            ASOF LEFT JOIN s{i} x ON x.person = p.person AND x.ts >= p.ts)""")  # noqa: S608
        previous = f"a{i}"
    ok = [f"coalesce(t{i} - ts <= $window, false)" for i in range(n)]
    reached = " + ".join(f"({' AND '.join(ok[: i + 1])})::INT" for i in range(n))
    done = ", ".join(f"greatest({', '.join(f't{j}' for j in range(i + 1))}) AS c{i}" for i in range(n))
    return [*ctes, f"attempts AS (SELECT person, ts, grp, {reached} AS reached, {done} FROM {previous})",  # noqa: S608
            """best AS (SELECT * FROM attempts WHERE reached > 0
                QUALIFY row_number() OVER (PARTITION BY person
                                           ORDER BY reached DESC, ts, grp NULLS LAST) = 1)"""]
