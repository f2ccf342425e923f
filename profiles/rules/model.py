"""The compiled rules file as frozen values: what the engine reads and never changes.

:func:`profiles.rules.compile.load_rules` builds a :class:`Rules`; a hot reload builds a new
one. What evaluation learns while rules are in force (the event index, error counts, the
attribute-points cache) lives apart, in :class:`profiles.rules.runtime.RuleCaches`, so the
config itself stays a value.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from profiles import aggregates as agg
from profiles.conditions import Condition, Needs, Refs
from profiles.durations import HOUR_MS
from profiles.dwell import HEARTBEAT_EVENTS, LEAVE_EVENTS
from profiles.exceptions import RuleIssue
from profiles.rules import monotone
from profiles.rules.runtime import RuleCaches

if TYPE_CHECKING:
    from profiles.rules.index import Candidates

EventKey = tuple[str, str | None]  # (event type or "*", track/page name or None for any)


@dataclass(frozen=True)
class Purpose:
    """A use of personal data a person can allow or refuse: the trait holding their answer and
    what is assumed before they gave one (opt-in purposes default to no)."""

    name: str
    trait: str
    default: bool


#: analytics is measured unless refused; marketing and personalisation need a yes (PIPL, GDPR)
DEFAULT_PURPOSES = (
    Purpose("analytics", "analytics_consent", True),
    Purpose("marketing", "marketing_consent", False),
    Purpose("personalisation", "personalisation_consent", False),
)


@dataclass(frozen=True)
class Options:
    consent_trait: str = "marketing_consent"  # the marketing purpose's trait (older rule files)
    purposes: tuple[Purpose, ...] = DEFAULT_PURPOSES
    consent_events: tuple[str, ...] = ("Consent Updated",)
    allowed_lateness_ms: int = HOUR_MS
    idempotency_ttl_ms: int = 30 * 86_400_000
    trigger_history: int = 20
    interaction_types: frozenset[str] = frozenset({"track", "page", "screen"})
    leave_events: tuple[str, ...] = LEAVE_EVENTS
    heartbeat_events: tuple[str, ...] = HEARTBEAT_EVENTS
    max_tags: int = 32
    keep_traits: frozenset[str] | None = None  # None: every identify trait
    redirect_ttl_ms: int = 7 * 86_400_000
    timer_stale_after_ms: int = 86_400_000  # a timer due longer ago than this is dropped, not fired
    segment_recheck_ms: int = HOUR_MS  # stream segments time can change are re-evaluated at least this often


@dataclass(frozen=True)
class AggregateRule:
    name: str
    op: str
    on: tuple[EventKey, ...]
    where: Condition | None
    value: Condition | None
    window_ms: int
    bucket_ms: int
    sid: str  # storage id in field names: short, stable (see storage_id)

    @property
    def kind(self) -> str:
        return agg.OP_KINDS[self.op]


@dataclass(frozen=True)
class TagRule:
    rule: str
    on: tuple[EventKey, ...]
    where: Condition | None
    when: Condition | None
    tag: str | None  # a fixed tag name, or
    name: Condition | None  # an expression giving it (interested_in_<feature>)
    ttl_ms: int  # 0: never expires


@dataclass(frozen=True)
class PointsRule:
    rule: str
    on: tuple[EventKey, ...]
    where: Condition | None
    points: float


@dataclass(frozen=True)
class AttributeRule:
    rule: str
    when: Condition
    points: float


@dataclass(frozen=True)
class ScoreSpec:
    half_life_ms: int
    behaviour: tuple[PointsRule, ...]
    attributes: tuple[AttributeRule, ...]
    cap: float | None


@dataclass(frozen=True)
class TierSpec:
    aggregate: str
    levels: tuple[tuple[str, float], ...]  # highest first
    inactive_after_ms: int  # 0: no inactivity downgrade
    downgrade_steps: int


@dataclass(frozen=True)
class TriggerRule:
    """One trigger; ``params`` holds what only its kind reads (see ``profiles/triggers/kinds/``)."""

    name: str
    kind: str
    on: tuple[EventKey, ...]
    where: Condition | None
    when: Condition | None
    marketing: bool
    cooldown_ms: int
    values: tuple[tuple[str, Condition], ...]
    params: Any = None  # the kind's own frozen settings (e.g. DelayedParams), None when it has none
    purpose: str | None = None  # consent it needs ("marketing" if marketing: true); None: a service message


@dataclass(frozen=True)
class SegmentRule:
    """One audience: a CEL condition over the profile (``when``: a stream segment, evaluated as
    profiles change) or a query over the lake (``sql``: evaluated by ``touchstream segment refresh``)."""

    name: str
    when: Condition | None
    sql: str | None
    description: str = ""
    purpose: str | None = None  # exports leave out members who do not allow this consent purpose

    @property
    def kind(self) -> str:
        return "stream" if self.when is not None else "sql"


@dataclass(frozen=True)
class Rules:
    """A compiled, validated rules file (and, apart from the config, its run-time caches)."""

    options: Options
    aggregates: dict[str, AggregateRule]
    tags: tuple[TagRule, ...]
    score: ScoreSpec | None
    tier: TierSpec | None
    triggers: dict[str, TriggerRule]
    issues: list[RuleIssue]
    raw: dict[str, Any]
    source: str = "<text>"
    segments: dict[str, SegmentRule] = field(default_factory=dict)
    caches: RuleCaches = field(default_factory=RuleCaches, compare=False, repr=False)

    @functools.cached_property
    def attribute_traits(self) -> tuple[str, ...] | None:
        """Traits the attribute points read (None: all of them), for caching their sum."""
        if self.score is None:
            return ()
        needs = Needs.of(a.when.needs for a in self.score.attributes).profile
        if needs is None or needs.get("traits", frozenset()) is None:
            return None
        return tuple(sorted(needs.get("traits") or ()))

    @functools.cached_property
    def purposes(self) -> dict[str, Purpose]:
        """Consent purposes by name; the marketing trait follows ``consent_trait`` when it was set."""
        out = {p.name: p for p in self.options.purposes}
        marketing = out.get("marketing")
        if marketing is not None and self.options.consent_trait != Options.consent_trait:
            out["marketing"] = Purpose("marketing", self.options.consent_trait, marketing.default)
        return out

    def candidates(self, event_type: str, name: str | None) -> Candidates:
        """Rules listening to this event type/name (``on:``), computed once per key."""
        index = self.caches.index
        return index.found.get((event_type, name)) or index.candidates(self, event_type, name)

    @property
    def aggregate_meta(self) -> dict[str, list[Any]]:
        """``{storage id: [kind, bucket_ms, window_ms]}`` for the Lua script's merge and prune."""
        return {a.sid: [a.kind, a.bucket_ms, a.window_ms] for a in self.aggregates.values()}

    @functools.cached_property
    def windows(self) -> dict[str, tuple[str, int, int]]:
        """``{name: (storage id, window ms, bucket ms)}`` for pruning."""
        return {a.name: (a.sid, a.window_ms, a.bucket_ms) for a in self.aggregates.values()}

    @functools.cached_property
    def _by_kind(self) -> dict[str, tuple[TriggerRule, ...]]:
        out: dict[str, list[TriggerRule]] = {}
        for rule in self.triggers.values():
            out.setdefault(rule.kind, []).append(rule)
        return {kind: tuple(rules) for kind, rules in out.items()}

    def trigger_of_kind(self, kind: str) -> tuple[TriggerRule, ...]:
        """The trigger rules of one kind, in file order."""
        return self._by_kind.get(kind, ())

    @functools.cached_property
    def stream_segments(self) -> tuple[SegmentRule, ...]:
        """The segments evaluated in the stream (a CEL condition), in file order."""
        return tuple(s for s in self.segments.values() if s.when is not None)

    @functools.cached_property
    def segment_needs(self) -> Needs:
        """What the stream segments read of ``profile``, together (one context per profile)."""
        return Needs.of(s.when.needs for s in self.stream_segments if s.when is not None)

    @functools.cached_property
    def segment_fingerprint(self) -> str:
        """The stream segments' definitions in one digest (names, conditions, which are timed):
        another value means existing profiles must be evaluated again (``segscan``); "" when
        there is no stream segment (nothing to evaluate)."""
        if not self.stream_segments:
            return ""
        timed = self.timed_segments
        rises, unless = self.segments_entered_by_time, self.segments_entered_by_time_if_sums_fall
        text = "\n".join(f"{s.name}\t{s.when.source if s.when else ''}\t{timed.get(s.name)}"
                          f"\t{s.name in rises}\t{s.name in unless}"
                          for s in sorted(self.stream_segments, key=lambda s: s.name))
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    @functools.cached_property
    def timed_segments(self) -> dict[str, bool]:
        """The stream segments whose answer time alone can change, each with whether it *drifts*.

        Time changes an answer on known dates when the condition reads tags (expiries), a windowed
        aggregate (buckets leaving the window) or the tier (its windowed aggregate, its
        inactivity downgrade); it drifts (changes at any moment) when it reads ``now`` or a
        score that decays. Traits, consent, lifetime aggregates and the first/last seen times
        alone never change with time. Every profile of rules with a timed segment keeps a
        segment timer (``profiles/segments/timing.py``); other rules pay nothing for it.
        """
        out: dict[str, bool] = {}
        for rule in self.stream_segments:
            assert rule.when is not None
            needs = rule.when.needs.profile

            def reads(member: str, needs: Refs | None = needs) -> bool:
                return needs is None or member in needs

            drifts = rule.when.reads_now or (reads("score") and self.score is not None
                                              and self.score.half_life_ms > 0)
            windowed = set()
            if reads("agg"):
                subs = None if needs is None else needs.get("agg")
                windowed = {n for n in (self.aggregates if subs is None else subs)
                            if n in self.aggregates and self.aggregates[n].window_ms}
            tier = self.tier
            tier_moves = reads("tier") and tier is not None and bool(
                tier.inactive_after_ms or (tier.aggregate in self.aggregates
                                           and self.aggregates[tier.aggregate].window_ms))
            if drifts or windowed or tier_moves or reads("tags"):
                out[rule.name] = drifts
        return out

    @functools.cached_property
    def segments_entered_by_time(self) -> frozenset[str]:
        """The timed segments a non-member may enter by time alone (``profiles/rules/monotone.py``):
        only these give a person outside them a segment timer. ``hot_leads`` (a decaying score
        and a tag) is not one: time only takes people out of it, and members are re-checked."""
        return self._entered_by_time(sums_fall=False)

    @functools.cached_property
    def segments_entered_by_time_if_sums_fall(self) -> frozenset[str]:
        """The same for a profile whose windowed sums hold no negative bucket (time alone then
        only lowers them, and the tier built on one): ``big_spenders`` (``tier == "A"``) is not
        one. A profile's next event evaluates it again, so this holds until then."""
        return self._entered_by_time(sums_fall=True)

    @functools.cached_property
    def timed_sums(self) -> tuple[AggregateRule, ...]:
        """The windowed sums whose sign decides between the two sets above (none: they agree)."""
        if self.segments_entered_by_time == self.segments_entered_by_time_if_sums_fall:
            return ()
        return tuple(a for a in self.aggregates.values() if a.op == "sum" and a.window_ms)

    def _entered_by_time(self, *, sums_fall: bool) -> frozenset[str]:
        out = set()
        for rule in self.stream_segments:
            if rule.name not in self.timed_segments or rule.when is None:
                continue
            tree = monotone.parse(rule.when.source)
            leaf = functools.partial(self._moves, sums_fall=sums_fall)
            if tree is None or monotone.direction(tree, leaf) not in (monotone.CONST, monotone.DOWN):
                out.add(rule.name)
        return frozenset(out)

    def _moves(self, path: tuple[str, ...], *, sums_fall: bool = False) -> str:
        """How ``profile.<path>`` moves with time alone (the leaves of :mod:`monotone`); a path
        ending in ``==`` and a text: whether that equality can turn true (the tier's levels)."""
        head = path[0]
        if head in ("traits", "first_seen", "last_seen", "last_interaction", "consent"):
            return monotone.CONST
        if head == "score" and len(path) == 1:
            score = self.score
            if score is None or score.half_life_ms <= 0:
                return monotone.CONST
            points = [p.points for p in score.behaviour] + [a.points for a in score.attributes]
            return monotone.DOWN if all(p >= 0 for p in points) else monotone.ANY  # decays to 0
        if head == "tags" and len(path) == 1:
            return monotone.DOWN  # tags only expire
        if head == "agg" and len(path) == 2 and (spec := self.aggregates.get(path[1])) is not None:
            return self._aggregate_moves(spec, sums_fall)
        if head == "tier" and len(path) == 3 and path[1] == "==" and self.tier is not None:
            # the tier only falls when its aggregate does (the inactivity downgrade only lowers it):
            # then it can leave the top level and reach the lowest, nothing else is certain
            spec = self.aggregates.get(self.tier.aggregate)
            if spec is None or self._aggregate_moves(spec, sums_fall) not in (monotone.CONST, monotone.DOWN):
                return monotone.ANY
            levels = [name for name, _ in self.tier.levels]
            return (monotone.DOWN if path[2] == levels[0] else monotone.UP if path[2] == levels[-1]
                    else monotone.ANY)
        return monotone.ANY

    @staticmethod
    def _aggregate_moves(spec: AggregateRule, sums_fall: bool) -> str:
        """Buckets only leave the window: a count, distinct count or maximum only falls, a minimum
        only rises, a sum falls when no bucket is negative; first and last go either way."""
        if not spec.window_ms:
            return monotone.CONST
        falls = {"count", "unique", "max"} | ({"sum"} if sums_fall else set())
        return monotone.DOWN if spec.op in falls else monotone.UP if spec.op == "min" else monotone.ANY

    @property
    def rule_count(self) -> int:
        behaviour = len(self.score.behaviour) + len(self.score.attributes) if self.score else 0
        return (
            len(self.aggregates) + len(self.tags) + behaviour + len(self.triggers) + (1 if self.tier else 0)
            + len(self.segments)
        )

    @property
    def eval_errors(self) -> dict[str, int]:
        """Evaluation failures per qualified rule name since these rules took effect."""
        return self.caches.eval_errors

    @property
    def attribute_cache(self) -> dict[tuple[Any, ...], float]:
        return self.caches.attribute_points

    def count_error(self, rule: str) -> None:
        self.caches.count_error(rule)
