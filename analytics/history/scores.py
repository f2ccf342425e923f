"""The lead score, traits and the tier from history, by the stream's own formulas (``facts.py``).

Behaviour points are linear in their events: the stored ``(value, ref)`` is the sum of every
event's points decayed to the latest such event (``scoring.add_points`` in any order gives the
same, up to its rounding to 10 significant digits per event), so SQL sums
``points * 2^-(ref - ts)/half_life`` per survivor (in the one pass of ``fold.py``). Attribute
points come from the traits (the latest identify value per trait by event time), evaluated by
the rules' own conditions once per distinct set of trait values, as ``Facts.attribute_points``
caches them. The tier is ``scoring.tier_for`` of the tier aggregate, one inactivity downgrade
after ``tier.inactive_after`` without interaction.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from analytics.history import base
from analytics.history.cel_sql import quote
from analytics.history.expressions import Expressions, on_sql
from profiles import scoring
from profiles.evaluation import Evaluator, safe_context
from profiles.result import BatchResult
from profiles.rules.model import Rules


def points_sql(exprs: Expressions, rules: Rules) -> str | None:
    """SQL of an event's behaviour points (the sum of the rules it matches), None without a score."""
    if rules.score is None or not rules.score.behaviour:
        return None
    terms = []
    for p in rules.score.behaviour:
        on = on_sql(p.on)
        where = exprs.condition(p.where, on)
        terms.append(f"(CASE WHEN {on} AND {where} THEN {float(p.points)!r} ELSE 0.0 END)")
    return " + ".join(terms)


def traits(con: duckdb.DuckDBPyConnection, names: tuple[str, ...] | None, keep: frozenset[str] | None,
           ) -> dict[str, dict[str, str]]:
    """Per survivor, the JSON text of each trait (``names``; None: every trait), latest by event time."""
    identify = (f"SELECT survivor, ts, _partition AS p, _offset AS o, e_traits FROM {base.TABLE} "
                "WHERE e_type = 'identify'")
    if names is None:
        sql = f"""
            WITH i AS ({identify}),
            k AS (SELECT survivor, ts, p, o, e_traits, unnest(json_keys(e_traits)) AS name FROM i)
            SELECT survivor, name, max({{'ts': ts, 'p': p, 'o': o,
                'v': CAST(json_extract(e_traits, '$."' || name || '"') AS VARCHAR)}}).v
            FROM k WHERE NOT contains(name, '"') AND NOT contains(name, '\\') GROUP BY survivor, name
        """
    else:
        kept = [n for n in names if keep is None or n in keep]
        if not kept:
            return {}
        parts = []
        for name in kept:
            path = quote(f'$."{name}"')
            parts.append(f"""SELECT survivor, {quote(name)} AS name,
                max({{'ts': ts, 'p': p, 'o': o, 'v': CAST(json_extract(e_traits, {path}) AS VARCHAR)}}).v
                FROM i WHERE json_exists(e_traits, {path}) GROUP BY survivor""")
        sql = f"WITH i AS ({identify}) " + " UNION ALL ".join(parts)
    out: dict[str, dict[str, str]] = {}
    for survivor, name, value in con.execute(sql).fetchall():
        if keep is None or name in keep:
            out.setdefault(survivor, {})[name] = value
    return out


class AttributePoints:
    """``Facts.attribute_points`` of a set of trait texts, once per distinct set."""

    def __init__(self, rules: Rules) -> None:
        self.rules = rules
        self.test = Evaluator(rules, BatchResult()).test
        self.cache: dict[tuple[tuple[str, str], ...], float] = {}

    def __call__(self, texts: dict[str, str] | None) -> float:
        score = self.rules.score
        if score is None or not score.attributes:
            return 0.0
        key = tuple(sorted((texts or {}).items()))
        found = self.cache.get(key)
        if found is None:
            values = {n: _loads(t) for n, t in key}
            ctx = safe_context({"profile": {"traits": values}})
            found = self.cache[key] = sum(a.points for a in score.attributes
                                          if self.test(a.when, ctx, f"score.attributes.{a.rule}"))
        return found


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def score_at(rules: Rules, state: tuple[float, int] | None, attributes: float, as_of_ms: int) -> float:
    """``Facts.score``: decayed behaviour plus attributes, capped, rounded to 3 places."""
    spec = rules.score
    if spec is None:
        return 0.0
    total = scoring.score_at(state, as_of_ms, spec.half_life_ms) + attributes
    if spec.cap is not None:
        total = min(total, spec.cap)
    return round(total, 3)


def tier(rules: Rules, amount: Any, last_interaction: int | None, as_of_ms: int) -> str | None:
    """``Facts.tier`` from the tier aggregate's value and the last interaction."""
    spec = rules.tier
    if spec is None or spec.aggregate not in rules.aggregates:
        return None
    found = scoring.tier_for(amount or 0, spec.levels)
    li = last_interaction
    if spec.inactive_after_ms and li is not None and as_of_ms - li >= spec.inactive_after_ms:
        return scoring.downgrade(found, spec.levels, spec.downgrade_steps)
    return found
