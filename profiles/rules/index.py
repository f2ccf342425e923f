"""Rules indexed by the event they listen to (``on:``), so an event evaluates only its candidates.

The first event of a type/name selects its :class:`Candidates` and works out which event
members their conditions read (only those are built for CEL) and whether every event-only
condition can be memoized on a few members (one lookup per event then answers them all).
Trigger kinds say themselves which events they listen to (``TriggerKind.listens``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from profiles.conditions import Condition, Needs, Refs
from profiles.triggers import kinds as trigger_kinds

if TYPE_CHECKING:
    from profiles.rules.model import AggregateRule, EventKey, PointsRule, Rules, TagRule, TriggerRule

INDEX_CACHE_LIMIT = 4096
INDEX_NAME_CHARS = 256  # longer event names are looked up, not cached (the cache is bounded by count)


@dataclass(frozen=True)
class Candidates:
    """The rules one event type/name can fire, and the context members they read."""

    aggregates: tuple[AggregateRule, ...] = ()
    points: tuple[PointsRule, ...] = ()
    tags: tuple[TagRule, ...] = ()
    triggers: tuple[TriggerRule, ...] = ()  # of every kind that listens to the event, file order
    event_needs: Refs | None = field(default_factory=dict)
    profile_needs: Refs | None = field(default_factory=dict)
    profile_rules_read_event: bool = False  # an `if`/values of a tag or trigger reads `event`
    count: int = 0
    # every event-only expression of the set, and the event members they read when all of them
    # can be memoized together: one lookup per event then answers all of them
    event_conditions: tuple[Condition, ...] = ()
    memo_members: tuple[str, ...] | None = None
    memo: dict[tuple[Any, ...], dict[int, Any]] = field(default_factory=dict, compare=False, repr=False)

    @functools.cached_property
    def aggregate_names(self) -> frozenset[str]:
        return frozenset(a.name for a in self.aggregates)

    @functools.cached_property
    def _by_kind(self) -> dict[str, tuple[TriggerRule, ...]]:
        out: dict[str, list[TriggerRule]] = {}
        for rule in self.triggers:
            out.setdefault(rule.kind, []).append(rule)
        return {kind: tuple(rules) for kind, rules in out.items()}

    def of_kind(self, kind: str) -> tuple[TriggerRule, ...]:
        """The candidate triggers of one kind, in file order."""
        return self._by_kind.get(kind, ())

    @property
    def empty(self) -> bool:
        return not (self.aggregates or self.points or self.tags or self.triggers)


class EventIndex:
    """Candidates per (event type, name), bounded by count (a run-time cache of one Rules)."""

    def __init__(self) -> None:
        self.found: dict[EventKey, Candidates] = {}  # read directly on the hot path

    def candidates(self, rules: Rules, event_type: str, name: str | None) -> Candidates:
        key = (event_type, name)
        found = self.found.get(key)
        if found is None:
            found = select(rules, event_type, name)
            if len(event_type) + len(name or "") <= INDEX_NAME_CHARS:
                if len(self.found) >= INDEX_CACHE_LIMIT:
                    self.found.clear()
                self.found[key] = found
        return found


def select(rules: Rules, event_type: str, name: str | None) -> Candidates:
    """The rules an event of this type/name can fire, and what their conditions read."""
    keys = {(event_type, name), (event_type, None), ("*", None)}

    def hit(on: tuple[EventKey, ...]) -> bool:
        return any(k in keys for k in on)

    aggs = tuple(r for r in rules.aggregates.values() if hit(r.on))
    points = tuple(r for r in (rules.score.behaviour if rules.score else ()) if hit(r.on))
    tags = tuple(r for r in rules.tags if hit(r.on))
    triggers = tuple(
        r for r in rules.triggers.values() if trigger_kinds.get(r.kind).listens(r, event_type, hit)
    )
    conditions: list[Condition] = []
    for a in aggs:
        conditions += [c for c in (a.where, a.value) if c]
    for p in points:
        conditions += [p.where] if p.where else []
    for t in tags:
        conditions += [c for c in (t.where, t.when, t.name) if c]
    late = [c for t in tags for c in (t.when,) if c]
    for g in triggers:
        early, profile = trigger_kinds.get(g.kind).indexed_conditions(g)
        conditions += [*early, *profile]
        late += profile
    needs = Needs.of(c.needs for c in conditions)
    late_needs = Needs.of(c.needs for c in late)
    count = len(aggs) + len(points) + len(tags) + len(triggers)
    late_ids = {id(c) for c in late}
    early_conditions = list({id(c): c for c in conditions if id(c) not in late_ids}.values())
    memo_members: tuple[str, ...] | None = None
    if early_conditions and all(c.memo_keys is not None for c in early_conditions):
        memo_members = tuple(sorted({m for c in early_conditions for m in (c.memo_keys or ())}))
    return Candidates(
        aggs,
        points,
        tags,
        triggers,
        needs.event,
        needs.profile,
        late_needs.event is None or bool(late_needs.event),
        count,
        tuple(early_conditions),
        memo_members,
    )
