"""Dynamic tags from history: which tags a person holds as of a time, and until when.

A tag rule sets its tag (fixed, or named by an expression: ``interested_in_<feature>``) on every
event its ``on:``/``where:`` select and its ``if:`` holds for, until ``ttl`` after that event
(``profiles/updates.py``); so a tag is active as of ``t`` when the latest such event is later
than ``t - ttl`` (or ever, without ttl). Only candidate events in that span are looked at.

``if:`` is taken in one of three ways:

* no ``if:`` or one over ``event`` only: SQL (translated, or evaluated by the CEL runtime);
* one over ``profile``: evaluated by the rule's own condition, per candidate event, on the
  profile as of that event, built with the engine's own ``ProfileState`` and ``Facts``
  (:mod:`analytics.history.replay`);
* one reading ``profile.tags`` (tags of rules evaluated just before), ``profile.consent`` or
  ``event`` members next to ``profile``: not checked, and reported as such.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import duckdb

from analytics.history import base, cel_sql
from analytics.history.cel_sql import Sql
from analytics.history.expressions import Expressions, on_sql
from profiles.rules.model import Rules, TagRule
from profiles.updates import MAX_TAG_CHARS

# what the replay feeds; not consent (answers may come from consent track events, not only traits)
REPLAYED = frozenset({"agg", "score", "traits", "tier", "first_seen", "last_seen", "last_interaction"})


@dataclass(frozen=True)
class TagPlan:
    """One tag rule as SQL over ``h_events`` (and how its ``if:`` is taken)."""

    rule: TagRule
    table: str  # h_tagc_<n>: its candidate events
    match: str  # on: and where:
    name: Sql | None  # the name expression, None for a fixed tag
    when: str  # SQL of an event-only if: ("TRUE" without one)
    replayed: bool  # the if: reads the profile: evaluated per candidate by the replay
    unchecked: str | None = None  # why the rule is not checked


def plan(exprs: Expressions, rules: Rules) -> list[TagPlan]:
    out = []
    for i, rule in enumerate(rules.tags):
        on = on_sql(rule.on)
        match = f"({on} AND {exprs.condition(rule.where, on)})"
        name = exprs.value(rule.name, match) if rule.name is not None else None
        when, replayed, unchecked = "TRUE", False, None
        if rule.when is not None:
            needs = rule.when.needs
            if not needs.reads_profile:
                when = exprs.condition(rule.when, match)
            elif needs.profile is None or not set(needs.profile) <= REPLAYED:
                unchecked = "its if: reads profile.tags or profile.consent (or the whole profile)"
            elif needs.event is None or needs.event:
                unchecked = "its if: reads the event next to the profile"
            else:
                replayed = True
        out.append(TagPlan(rule, f"h_tagc_{i}", match, name, when, replayed, unchecked))
    return out


def prepare(con: duckdb.DuckDBPyConnection, exprs: Expressions, plans: Iterable[TagPlan],
            since_ms: int | None) -> None:
    """Materialize each checked rule's candidates: (rid, survivor, oneid, ts, p, o, tag), events
    whose tag would still be active at ``since_ms`` (None: all)."""
    for p in plans:
        if p.unchecked is not None:
            continue
        tag = cel_sql.as_text(p.name) if p.name is not None else cel_sql.quote(p.rule.tag or "")
        recent = "TRUE" if since_ms is None or not p.rule.ttl_ms else f"ts + {p.rule.ttl_ms} > {since_ms}"
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {p.table} AS
            SELECT * FROM (
                SELECT {base.TABLE}.rid, survivor, oneid, ts, _partition AS p, _offset AS o, e_type,
                       {tag} AS tag
                FROM {base.TABLE}{exprs.joins()}
                WHERE {p.match} AND {recent} AND {p.when}
            ) WHERE length(tag) BETWEEN 1 AND {MAX_TAG_CHARS}
        """)


def held(con: duckdb.DuckDBPyConnection, p: TagPlan, keep: str = "TRUE") -> list[tuple[str, str, int]]:
    """``(survivor, tag, latest time)`` for a rule without a profile-reading ``if:``."""
    return [(s, t, int(ts)) for s, t, ts in con.execute(
        f"SELECT survivor, tag, max(ts) FROM {p.table} WHERE {keep} GROUP BY survivor, tag").fetchall()]


def expiry(rule: TagRule, latest_ms: int) -> int:
    """The stored expiry of a tag last set at ``latest_ms`` (0: never expires)."""
    return latest_ms + rule.ttl_ms if rule.ttl_ms else 0


def active(expiry_ms: int, as_of_ms: int) -> bool:
    return expiry_ms == 0 or expiry_ms > as_of_ms
