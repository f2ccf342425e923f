"""A tag's profile-reading ``if:`` per candidate event, on the profile as of that event.

The profile is the engine's own :class:`~profiles.state.ProfileState`, fed from history, and the
``profile`` variable is built by the engine's own :class:`~profiles.facts.Facts`, so aggregates,
score, tier and traits mean exactly what they mean in the stream. What is fed:

* the contributions of the aggregates the condition reads (and the tier's), from
  ``h_contrib_<n>``, in buckets, as ``ProfileState.add`` files them;
* the identify traits it reads (with the attribute-point traits when it reads the score);
* per candidate, computed in SQL: the behaviour score (points are linear: a running sum of
  decayed points over the person's events), the last interaction, the first event time.

"As of the event" means: the person's events up to it in (event time, partition, offset)
order. The stream applies them in arrival order, to the profile as it was then: a person whose
events arrive out of time order, or who was merged with another after the event, may have
seen a different profile. Verify then reports the tag, by design.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import duckdb

from analytics.history import as_of_event, base
from analytics.history.aggregates import Plan
from analytics.history.cel_sql import quote
from analytics.history.tags import TagPlan
from profiles import jsonsafe
from profiles.evaluation import Evaluator, safe_context
from profiles.facts import Facts
from profiles.result import BatchResult
from profiles.rules.model import Rules
from profiles.state import ProfileState

_TRAIT, _CONTRIB, _CANDIDATE = 0, 1, 2  # order of one event's steps (engine.on_event)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> Iterator[dict[str, Any]]:
    for batch in con.sql(sql).to_arrow_reader(50_000):
        yield from batch.to_pylist()


def evaluate(con: duckdb.DuckDBPyConnection, rules: Rules, tag: TagPlan, plans: dict[str, Plan],
             points: str | None, joins: str, keep: str = "TRUE",
             prepare: Callable[[Iterable[str]], None] | None = None) -> list[tuple[str, str, int]]:
    """``(survivor, tag, latest time)`` for which the tag's ``if:`` held on a candidate event
    (among the candidates ``keep``, SQL over the candidate table, lets through). The replay in
    Python reads the aggregates' contribution tables, made by ``prepare`` (when not already)."""
    when = tag.rule.when
    assert when is not None and when.needs.profile is not None
    needs = when.needs.profile
    names = set(needs.get("agg") or ()) if "agg" in needs else set()
    if needs.get("agg", frozenset()) is None:
        names = set(rules.aggregates)
    if "tier" in needs and rules.tier is not None:
        names.add(rules.tier.aggregate)
    trait_names: set[str] | None = set()
    if "traits" in needs:
        subs = needs["traits"]
        trait_names = None if subs is None else set(subs)
    if "score" in needs and trait_names is not None:
        attribute = rules.attribute_traits
        trait_names = None if attribute is None else trait_names | set(attribute)

    _candidates(con, rules, tag, points, joins, keep, score="score" in needs,
                interactions="last_interaction" in needs or "tier" in needs)
    if as_of_event.applies(rules, needs, plans):
        found = as_of_event.holds(con, when.source, as_of_event.columns(con, rules, needs, plans, joins))
        if found is not None:
            return found
    if prepare is not None:
        prepare(names)
    steps: list[tuple[Any, ...]] = []  # (survivor, ts, p, o, order, kind, payload)
    for c in _rows(con, f"SELECT * FROM {as_of_event.VALUES}"):
        steps.append((c["survivor"], c["ts"], c["p"], c["o"], _CANDIDATE, "c", c))
    involved = f"(SELECT survivor, min(ts) AS first FROM {tag.table} GROUP BY survivor)"
    for name in sorted(names):
        p = plans[name]
        span = p.rule.window_ms + p.rule.bucket_ms
        recent = f"c.ts >= k.first - {span}" if p.rule.window_ms > 0 else "TRUE"
        bit = ", c.bit" if p.kind == "u" else ""
        for row in _rows(con, f"SELECT c.survivor, c.ts, c.p, c.o, c.idx, c.num, c.vj{bit} FROM {p.table} c "
                              f"JOIN {involved} k ON k.survivor = c.survivor WHERE {recent}"):
            steps.append((row["survivor"], row["ts"], row["p"], row["o"], _CONTRIB, name, row))
    if trait_names is None or trait_names:
        for row in _rows(con, f"SELECT e.survivor, e.ts, e._partition AS p, e._offset AS o, "
                              f"CAST(e.e_traits AS VARCHAR) AS traits FROM {base.TABLE} e "
                              f"JOIN {involved} k ON k.survivor = e.survivor WHERE e.e_type = 'identify'"):
            steps.append((row["survivor"], row["ts"], row["p"], row["o"], _TRAIT, "t", row))
    steps.sort(key=lambda s: (s[0], s[1], s[2], s[3], s[4]))

    evaluator = Evaluator(rules, BatchResult())
    facts = Facts(rules, evaluator)
    kept = rules.options.keep_traits
    rule_name = f"tags.{tag.rule.rule}"
    latest: dict[tuple[str, str], int] = {}
    st: ProfileState | None = None
    for survivor, ts, _, _, _, kind, row in steps:
        if st is None or st.oneid != survivor:
            st = ProfileState(survivor)
        if kind == "t":
            for trait, value in jsonsafe.loads_object(row["traits"]).items():
                if (kept is None or trait in kept) and (trait_names is None or trait in trait_names):
                    st.set_trait(trait, ts, jsonsafe.dumps(value))
        elif kind == "c":
            st.first_seen = row["first_seen"]
            st.last_seen = ts
            st.last_interaction = row.get("li")
            b = row.get("behaviour")
            st.score = (b, ts) if b is not None else None
            ctx = safe_context({"profile": facts.profile(st, needs, ts)})
            if evaluator.test(when, ctx, rule_name):
                key = (survivor, row["tag"])
                latest[key] = max(latest.get(key, ts), ts)
        else:
            p = plans[kind]
            st.add(kind, p.rule.sid, p.kind, row["idx"], _contribution(p, row))
        st.groups.clear()
    return [(s, t, ts) for (s, t), ts in latest.items()]


def _contribution(p: Plan, row: dict[str, Any]) -> Any:
    if p.rule.op == "count":
        return 1
    if p.kind in ("n", "mn", "mx"):
        return row["num"]
    if p.kind == "u":
        return int(row["bit"])
    return (int(row["ts"]), jsonsafe.dumps(json.loads(row["vj"])))


def _candidates(con: duckdb.DuckDBPyConnection, rules: Rules, tag: TagPlan, points: str | None, joins: str,
                keep: str, *, score: bool, interactions: bool) -> None:
    """``h_tag_values``: the candidates with, as of each: behaviour score, last interaction, first
    event time.

    Both are running values over the person's events in (time, partition, offset) order, an
    event's own points and interaction coming before its tags (``engine.on_event``)."""
    spec = rules.score
    cands, events = tag.table, base.TABLE
    people = f"SELECT DISTINCT survivor FROM {cands}"
    ctes = [f"firsts AS (SELECT survivor, first_seen FROM {base.firsts(con)})"]
    joined, columns = ["JOIN firsts f ON f.survivor = c.survivor"], ["c.*", "f.first_seen"]
    mine = "SELECT survivor, ts, _partition AS p, _offset AS o, 0 AS cand, CAST(NULL AS BIGINT) AS rid"
    theirs = "SELECT survivor, ts, p, o, 1 AS cand, rid"
    if score and spec is not None and points is not None:
        hl = float(spec.half_life_ms) if spec.half_life_ms > 0 else None
        decay_in = f"pow(2.0, (ts - top) / {hl!r})" if hl else "1.0"  # top: the last candidate's time
        decay_out = f"pow(2.0, (top - ts) / {hl!r})" if hl else "1.0"
        ctes += [
            f"pts AS ({mine}, {points} AS pts FROM {events}{joins} WHERE survivor IN ({people}))",
            f"""sc AS (
                SELECT *, sum(pts * {decay_in}) OVER (PARTITION BY survivor ORDER BY ts, p, o, cand
                                                   ROWS UNBOUNDED PRECEDING) AS acc
                FROM (SELECT *, max(ts) FILTER (WHERE cand = 1) OVER (PARTITION BY survivor) AS top
                      FROM (SELECT * FROM pts WHERE pts <> 0 UNION ALL {theirs}, 0.0 FROM {cands})))""",
            f"scores AS (SELECT rid, CASE WHEN acc <> 0 THEN acc * {decay_out} END AS behaviour "
            "FROM sc WHERE cand = 1)"]
        joined.append("LEFT JOIN scores USING (rid)")
        columns.append("behaviour")
    if interactions:
        types = ", ".join(quote(t) for t in sorted(rules.options.interaction_types)) or "NULL"
        ctes.append(f"""lis AS (
            SELECT rid, li FROM (
                SELECT *, max(ts) FILTER (WHERE inter) OVER (PARTITION BY survivor ORDER BY ts, p, o, cand
                                                             ROWS UNBOUNDED PRECEDING) AS li
                FROM ({mine}, TRUE AS inter FROM {events} WHERE e_type IN ({types}) AND survivor IN ({people})
                      UNION ALL {theirs}, FALSE FROM {cands}))
            WHERE cand = 1)""")
        joined.append("LEFT JOIN lis USING (rid)")
        columns.append("li")
    sql = (f"WITH {', '.join(ctes)} SELECT {', '.join(columns)} FROM {cands} c {' '.join(joined)} "
           f"WHERE c.rid IN (SELECT rid FROM {cands} WHERE {keep})")
    con.execute(f"CREATE OR REPLACE TEMP TABLE {as_of_event.VALUES} AS {sql}")
