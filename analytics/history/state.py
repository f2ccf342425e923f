"""The profile rules run over the lake: what every person's aggregates, tags, score and tier are
as of a time, by history alone.

:class:`History` plans every rule expression (translated to SQL, or evaluated by the CEL
runtime), builds ``h_events`` once with the members they read (:mod:`analytics.history.base`),
then answers with one grouped pass for every aggregate, the behaviour score and the last
interaction (:mod:`analytics.history.fold`; unique counts and the aggregates the replay or a
backfill reads get a table of their contributions), one pass per tag rule, and the tag replay
for ``if:`` conditions over the profile. Nothing here reads Redis.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from analytics.history import aggregates, base, cel_sql, fold, replay, scores, tags
from analytics.history.expressions import Expressions
from profiles.rules.model import Rules

log = logging.getLogger(__name__)


@dataclass(slots=True)
class HistoryProfile:
    """One person as history sees them (the fields verify compares)."""

    aggregates: dict[str, Any] = field(default_factory=dict)  # those with events (History.defaults)
    tags: dict[str, int] = field(default_factory=dict)  # active tag -> expiry (0: never)
    score: float = 0.0
    tier: str | None = None


@dataclass
class History:
    """Rules over one DuckDB connection to the lake (see module doc)."""

    con: duckdb.DuckDBPyConnection
    rules: Rules
    skew_ms: int = 300_000
    aggregate_names: tuple[str, ...] | None = None  # None: every aggregate
    with_tags: bool = True
    with_score: bool = True
    tag_rules: tuple[str, ...] | None = None  # None: every tag rule
    only: str = "TRUE"  # SQL over e_type and e_key: the events the rules asked for can read
    timings: dict[str, float] = field(default_factory=dict)
    exprs: Expressions = field(default_factory=Expressions)
    plans: dict[str, aggregates.Plan] = field(default_factory=dict)
    tag_plans: list[tags.TagPlan] = field(default_factory=list)
    points: str | None = None
    rows: int = 0
    prepared: set[str] = field(default_factory=set)  # aggregates with a contribution table

    def __post_init__(self) -> None:
        started = time.perf_counter()
        rules = self.rules
        names = list(rules.aggregates) if self.aggregate_names is None else list(self.aggregate_names)
        if self.with_score and rules.tier is not None and rules.tier.aggregate in rules.aggregates:
            names.append(rules.tier.aggregate)
        replay_reads: list[str] = []
        if self.with_tags:
            self.tag_plans = [t for t in tags.plan(self.exprs, rules)
                              if self.tag_rules is None or t.rule.rule in self.tag_rules]
            for t in self.tag_plans:  # aggregates a replayed if: reads
                if t.replayed and t.rule.when is not None and t.rule.when.needs.profile is not None:
                    read = t.rule.when.needs.profile.get("agg", frozenset())
                    replay_reads += list(rules.aggregates) if read is None else sorted(read)
                    if "tier" in t.rule.when.needs.profile and rules.tier is not None:
                        replay_reads.append(rules.tier.aggregate)
        names += replay_reads
        chosen = [rules.aggregates[n] for n in dict.fromkeys(names) if n in rules.aggregates]
        self.plans = {p.rule.name: p for p in aggregates.plan(self.exprs, chosen)}
        if self.with_score or any(t.replayed for t in self.tag_plans):
            self.points = scores.points_sql(self.exprs, rules)
        # identify traits: the attribute points' and the replay's (not an expression's: identify rows only)
        traits = ((self.with_score and rules.score is not None and bool(rules.score.attributes))
                  or any(t.replayed for t in self.tag_plans))
        cel_sql.install(self.con)
        self.rows = base.build(self.con, self.exprs.members, raw=self.exprs.needs_raw, skew_ms=self.skew_ms,
                               lateness_ms=rules.options.allowed_lateness_ms, fields=self.exprs.fields,
                               identify_traits=traits,
                               only=self.only)
        self.exprs.fill(self.con)
        self.timings["events"] = time.perf_counter() - started

    def prepare(self, names: Iterable[str]) -> None:
        """Materialize the contribution tables of these aggregates (``Plan.table``), once each:
        the replay and backfill read them; verify folds the rest straight from ``h_events``."""
        started = time.perf_counter()
        todo = [self.plans[n] for n in dict.fromkeys(names) if n not in self.prepared]
        aggregates.prepare(self.con, self.exprs, todo)
        self.prepared.update(p.rule.name for p in todo)
        self.timings["contributions"] = self.timings.get("contributions", 0.0) + time.perf_counter() - started

    @property
    def defaults(self) -> dict[str, Any]:
        """Each aggregate's value for a person without events in its window (0, or None)."""
        return {name: aggregates.decode(p.rule.op, None) for name, p in self.plans.items()}

    @property
    def evaluated(self) -> list[str]:
        """Expressions the CEL runtime evaluated over rows (not translated to SQL)."""
        return sorted(source for source, done in self.exprs.translated.items() if not done)

    @property
    def unchecked(self) -> dict[str, str]:
        """Rules left out, with the reason."""
        return {f"tags.{t.rule.rule}": t.unchecked for t in self.tag_plans if t.unchecked is not None}

    @property
    def hidden_tags(self) -> frozenset[str] | None:
        """Tags only unchecked rules set (left out of comparisons); None when an unchecked rule
        names its tags by an expression (then tags cannot be compared at all)."""
        names = set()
        for t in self.tag_plans:
            if t.unchecked is not None:
                if t.rule.tag is None:
                    return None
                names.add(t.rule.tag)
        checked = {t.rule.tag for t in self.tag_plans if t.unchecked is None}
        return frozenset(names - checked)

    def profiles(self, as_of_ms: int) -> dict[str, HistoryProfile]:
        """Every person's fields as of ``as_of_ms``: aggregates, behaviour score and last
        interaction from one grouped pass (:mod:`analytics.history.fold`), unique counts from
        their contribution tables."""
        started = time.perf_counter()
        plans = list(self.plans.values())
        score = None
        if self.with_score and self.points is not None and self.rules.score is not None:
            score = fold.Score(self.points, self.rules.score.half_life_ms)
        rules = self.rules
        interactions = rules.options.interaction_types if self.with_score and rules.tier is not None else None
        table = fold.as_of(self.con, self.exprs.joins(), plans, as_of_ms, score=score,
                           interactions=interactions)
        out = {s: HistoryProfile() for s in table.column("survivor").to_pylist()}
        folded = fold.folded(plans)
        for i, p in enumerate(folded):
            name = p.rule.name
            read = json.loads if p.rule.op in ("first", "last") else None  # else Arrow's int or float
            for profile, value in zip(out.values(), table.column(f"a{i}").to_pylist(), strict=True):
                if value is not None:
                    profile.aggregates[name] = value if read is None else read(value)
        rest = [p for p in plans if p not in folded]  # unique counts
        self.prepare(p.rule.name for p in rest)
        for p in rest:
            values = aggregates.as_of(self.con, p, as_of_ms)
            pairs = zip(values.column(0).to_pylist(), values.column(1).to_pylist(), strict=True)
            for survivor, value in pairs:
                out[survivor].aggregates[p.rule.name] = aggregates.decode(p.rule.op, value)
        self.timings["aggregates"] = time.perf_counter() - started
        if self.with_score:
            started = time.perf_counter()
            self._scores(out, table, as_of_ms)
            self.timings["score"] = time.perf_counter() - started
        if self.with_tags:
            started = time.perf_counter()
            for survivor, tag, expiry in self.tag_expiries(as_of_ms):
                if tags.active(expiry, as_of_ms):
                    out[survivor].tags[tag] = expiry
            self.timings["tags"] = time.perf_counter() - started
        return out

    def _scores(self, out: dict[str, HistoryProfile], folds: pa.Table, as_of_ms: int) -> None:
        """Score and tier of every person, from the fold's behaviour and last interaction."""
        rules = self.rules
        def column(name: str) -> list[Any]:
            found = folds.column_names
            return folds.column(name).to_pylist() if name in found else [None] * folds.num_rows

        values, refs, lis = column("behaviour"), column("ref"), column("li")
        attribute = scores.AttributePoints(rules)
        texts: dict[str, dict[str, str]] = {}
        if rules.score is not None and rules.score.attributes:
            texts = scores.traits(self.con, rules.attribute_traits, rules.options.keep_traits)
        none = attribute(None)  # most people: no trait the attributes read
        tier_name = rules.tier.aggregate if rules.tier is not None else None
        for (survivor, profile), value, ref, li in zip(out.items(), values, refs, lis, strict=True):
            found = texts.get(survivor)
            points = none if found is None else attribute(found)
            behaviour = None if value is None else (float(value), int(ref))
            profile.score = scores.score_at(rules, behaviour, points, as_of_ms)
            if tier_name is not None:
                amount = profile.aggregates.get(tier_name)
                profile.tier = scores.tier(rules, amount, li, as_of_ms)

    def tag_expiries(self, since_ms: int | None, keep: str = "TRUE") -> list[tuple[str, str, int]]:
        """``(survivor, tag, expiry)`` of every tag still active at ``since_ms`` (None: every tag
        ever set), over the candidate events ``keep`` lets through."""
        tags.prepare(self.con, self.exprs, self.tag_plans, since_ms)
        best: dict[tuple[str, str], int] = {}
        for plan in self.tag_plans:
            if plan.unchecked is not None:
                continue
            if plan.replayed:
                found = replay.evaluate(self.con, self.rules, plan, self.plans, self.points,
                                        self.exprs.joins(), keep, self.prepare)
            else:
                found = tags.held(self.con, plan, keep)
            for survivor, tag, latest in found:
                expiry = tags.expiry(plan.rule, latest)
                key = (survivor, tag)
                current = best.get(key)
                best[key] = 0 if current == 0 or expiry == 0 else max(expiry, current or 0)
        return [(s, t, e) for (s, t), e in best.items()]
