"""The rules file: aggregates, tags, a lead score, tiers and triggers, with CEL conditions.

Loading compiles every expression once, checks what it reads, and indexes the rules by the
event they listen to (``on:``), so an event only evaluates rules that can fire for it. A bad
rule is rejected with its name and reason (:attr:`Rules.issues`) and the others load;
:class:`RuleSet` reloads the file when it changes and never lets a broken edit replace the
rules in force (see :meth:`RuleSet.current`). The format is documented in
``profiles/default_rules.yaml``.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from profiles import aggregates as agg
from profiles.conditions import Condition, ConditionError, Needs, Refs, compile_condition
from profiles.durations import HOUR_MS, parse_duration
from profiles.dwell import HEARTBEAT_EVENTS, LEAVE_EVENTS, PAGE_TYPES
from profiles.exceptions import RuleIssue, RulesError

log = logging.getLogger(__name__)

DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.yaml")
EVENT_TYPES = frozenset({"identify", "track", "page", "screen", "group", "alias"})
TRIGGER_KINDS = frozenset({"event", "delayed", "dwell", "score_crossed", "tier_upgrade", "tier_downgrade"})
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_SECTIONS = ("version", "options", "aggregates", "tags", "score", "tier", "triggers")
_INDEX_CACHE_LIMIT = 4096
_INDEX_NAME_CHARS = 256  # longer event names are looked up, not cached (the cache is bounded by count)
MAX_RULE_NUMBER = 1e12  # points, caps, score thresholds and tier amounts

EventKey = tuple[str, str | None]


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false, so ``on:`` stays the key "on" (YAML 1.1 reads True)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


@dataclass(frozen=True)
class Options:
    consent_trait: str = "marketing_consent"
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
    name: str
    kind: str
    on: tuple[EventKey, ...]
    where: Condition | None
    when: Condition | None
    marketing: bool
    cooldown_ms: int
    delay_ms: int
    threshold_ms: float  # dwell: ms on the page; score_crossed: the score
    values: tuple[tuple[str, Condition], ...]


@dataclass(frozen=True)
class Candidates:
    """The rules one event type/name can fire, and the context members they read."""

    aggregates: tuple[AggregateRule, ...] = ()
    points: tuple[PointsRule, ...] = ()
    tags: tuple[TagRule, ...] = ()
    triggers: tuple[TriggerRule, ...] = ()  # event and delayed kinds
    dwell: tuple[TriggerRule, ...] = ()
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

    @property
    def empty(self) -> bool:
        return not (self.aggregates or self.points or self.tags or self.triggers or self.dwell)


@dataclass
class Rules:
    """A compiled, validated, indexed rules file."""

    options: Options
    aggregates: dict[str, AggregateRule]
    tags: tuple[TagRule, ...]
    score: ScoreSpec | None
    tier: TierSpec | None
    triggers: dict[str, TriggerRule]
    issues: list[RuleIssue]
    raw: dict[str, Any]
    source: str = "<text>"
    _index: dict[EventKey, Candidates] = field(default_factory=dict, repr=False)
    eval_errors: dict[str, int] = field(default_factory=dict, repr=False)
    attribute_cache: dict[tuple[Any, ...], float] = field(default_factory=dict, repr=False)
    _kinds: dict[str, tuple[TriggerRule, ...]] = field(default_factory=dict, repr=False)

    @functools.cached_property
    def attribute_traits(self) -> tuple[str, ...] | None:
        """Traits the attribute points read (None: all of them), for caching their sum."""
        if self.score is None:
            return ()
        needs = Needs.of(a.when.needs for a in self.score.attributes).profile
        if needs is None or needs.get("traits", frozenset()) is None:
            return None
        return tuple(sorted(needs.get("traits") or ()))

    # -- index -------------------------------------------------------------------------------
    def candidates(self, event_type: str, name: str | None) -> Candidates:
        """Rules listening to this event type/name (``on:``), computed once per key."""
        key = (event_type, name)
        found = self._index.get(key)
        if found is None:
            found = self._select(event_type, name)
            if len(event_type) + len(name or "") <= _INDEX_NAME_CHARS:
                if len(self._index) >= _INDEX_CACHE_LIMIT:
                    self._index.clear()
                self._index[key] = found
        return found

    def _select(self, event_type: str, name: str | None) -> Candidates:
        keys = {(event_type, name), (event_type, None), ("*", None)}

        def hit(on: tuple[EventKey, ...]) -> bool:
            return any(k in keys for k in on)

        aggs = tuple(r for r in self.aggregates.values() if hit(r.on))
        points = tuple(r for r in (self.score.behaviour if self.score else ()) if hit(r.on))
        tags = tuple(r for r in self.tags if hit(r.on))
        triggers = tuple(r for r in self.triggers.values() if r.kind in ("event", "delayed") and hit(r.on))
        dwell = (
            tuple(r for r in self.triggers.values() if r.kind == "dwell") if event_type in PAGE_TYPES else ()
        )
        conditions: list[Condition] = []
        for a in aggs:
            conditions += [c for c in (a.where, a.value) if c]
        for p in points:
            conditions += [p.where] if p.where else []
        for t in tags:
            conditions += [c for c in (t.where, t.when, t.name) if c]
        for g in triggers:
            conditions += [c for c in (g.where, g.when) if c] + [c for _, c in g.values]
        for d in dwell:
            conditions += [d.where] if d.where else []
        needs = Needs.of(c.needs for c in conditions)
        late = [c for t in tags for c in (t.when,) if c] + [c for g in triggers for c in (g.when,) if c]
        late += [c for g in triggers for _, c in g.values]
        late_needs = Needs.of(c.needs for c in late)
        profile_needs = needs.profile
        count = len(aggs) + len(points) + len(tags) + len(triggers) + len(dwell)
        late_ids = {id(c) for c in late}
        early = list({id(c): c for c in conditions if id(c) not in late_ids}.values())
        memo_members: tuple[str, ...] | None = None
        if early and all(c.memo_keys is not None for c in early):
            memo_members = tuple(sorted({m for c in early for m in (c.memo_keys or ())}))
        return Candidates(
            aggs,
            points,
            tags,
            triggers,
            dwell,
            needs.event,
            profile_needs,
            late_needs.event is None or bool(late_needs.event),
            count,
            tuple(early),
            memo_members,
        )

    # -- facts used by the engine ---------------------------------------------------------------
    @property
    def aggregate_meta(self) -> dict[str, list[Any]]:
        """``{storage id: [kind, bucket_ms, window_ms]}`` for the Lua script's merge and prune."""
        return {a.sid: [a.kind, a.bucket_ms, a.window_ms] for a in self.aggregates.values()}

    @functools.cached_property
    def windows(self) -> dict[str, tuple[str, int, int]]:
        """``{name: (storage id, window ms, bucket ms)}`` for pruning."""
        return {a.name: (a.sid, a.window_ms, a.bucket_ms) for a in self.aggregates.values()}

    def trigger_of_kind(self, kind: str) -> tuple[TriggerRule, ...]:
        found = self._kinds.get(kind)
        if found is None:
            found = self._kinds[kind] = tuple(r for r in self.triggers.values() if r.kind == kind)
        return found

    @property
    def rule_count(self) -> int:
        behaviour = len(self.score.behaviour) + len(self.score.attributes) if self.score else 0
        return (
            len(self.aggregates) + len(self.tags) + behaviour + len(self.triggers) + (1 if self.tier else 0)
        )

    def count_error(self, rule: str) -> None:
        self.eval_errors[rule] = self.eval_errors.get(rule, 0) + 1


# -- loading -------------------------------------------------------------------------------------


def storage_id(name: str) -> str:
    """A 4-character id for an aggregate's Redis fields, derived from its name.

    Bucket fields are most of a profile's bytes, so ``a:<id>:<bucket>`` beats
    ``a:pricing_views_7d:<bucket>``; deriving the id from the name keeps it stable across
    reloads and workers. A rules file can set ``id:`` explicitly (e.g. on a collision).
    """
    n = zlib.crc32(name.encode()) % (36**4)
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    for _ in range(4):
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out


def load_rules(
    text: str, *, source: str = "<text>", previous: Rules | None = None, strict: bool = False
) -> Rules:
    """Compile a rules file. Raises :class:`RulesError` when the file as a whole is unusable
    (YAML error, not a mapping, unknown version) or, with ``strict``, when any rule is rejected.

    With ``previous`` (a hot reload), a rejected rule that existed before keeps its previous
    version, so an edit with a typo never silently turns a running rule off.
    """
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        # PyYAML raises ValueError for dates like 2001-13-45, RecursionError for deep nesting
        raise RulesError(f"{source}: not valid YAML: {_one_line(exc)[:300]}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RulesError(f"{source}: the rules file must be a mapping of sections")
    if raw.get("version", 1) != 1:
        raise RulesError(f"{source}: unsupported rules version {_short(raw.get('version'))} (expected 1)")
    rules = _Compiler(raw, source).compile()
    if previous is not None and rules.issues:
        patched = copy.deepcopy(raw)
        kept = []
        for issue in rules.issues:
            old = _lookup(previous.raw, issue.rule)
            if old is not _MISSING and _assign(patched, issue.rule, copy.deepcopy(old)):
                kept.append(issue.rule)
        if kept:
            retry = _Compiler(patched, source).compile()
            still_bad = {i.rule for i in retry.issues}
            retry.issues = [
                RuleIssue(i.rule, i.error + ("" if i.rule in still_bad else " (previous version kept)"))
                for i in rules.issues
            ] + [i for i in retry.issues if i.rule not in {j.rule for j in rules.issues}]
            rules = retry
    for issue in rules.issues:
        log.error("rules %s: rejected %s", source, issue)
    if strict and rules.issues:
        raise RulesError(f"{source}: {len(rules.issues)} rule(s) rejected", rules.issues)
    return rules


def load_rules_file(path: str | os.PathLike[str], **kwargs: Any) -> Rules:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"{path}: cannot read the rules file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise RulesError(f"{path}: the rules file is not UTF-8 text: {exc.reason}") from None
    return load_rules(text, source=str(path), **kwargs)


_MISSING = object()


def _lookup(raw: dict[str, Any], dotted: str) -> Any:
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _assign(raw: dict[str, Any], dotted: str, value: Any) -> bool:
    parts = dotted.split(".")
    node: Any = raw
    for part in parts[:-1]:
        if not isinstance(node, dict):
            return False
        node = node.setdefault(part, {})
    if not isinstance(node, dict):
        return False
    node[parts[-1]] = value
    return True


def _one_line(exc: object) -> str:
    return " ".join(str(exc).split())


class _Reject(Exception):
    """Internal: one rule is bad (message only; the compiler adds the rule's name)."""


class _Compiler:
    def __init__(self, raw: dict[str, Any], source: str) -> None:
        self.raw = raw
        self.source = source
        self.issues: list[RuleIssue] = []
        self._storage_ids: dict[str, str] = {}

    def compile(self) -> Rules:
        for key in self.raw:
            if key not in _SECTIONS:
                self.issues.append(RuleIssue(str(key), f"unknown section; known: {', '.join(_SECTIONS)}"))
        options = self._options(self._section("options"))
        aggregates = self._named("aggregates", self._aggregate)
        known = frozenset(aggregates)
        tags = tuple(self._named("tags", lambda n, s: self._tag(n, s, known)).values())
        score = self._score(self.raw.get("score"), known)
        tier = self._tier(self.raw.get("tier"), known)
        triggers = self._named("triggers", lambda n, s: self._trigger(n, s, known, tier))
        return Rules(options, aggregates, tags, score, tier, triggers, self.issues, self.raw, self.source)

    # -- helpers ----------------------------------------------------------------------------
    def _section(self, name: str) -> dict[str, Any]:
        value = self.raw.get(name) or {}
        if not isinstance(value, dict):
            self.issues.append(RuleIssue(name, "must be a mapping"))
            return {}
        return value

    def _named(self, section: str, build: Callable[[str, dict[str, Any]], Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, spec in self._section(section).items():
            qualified = f"{section}.{name}"
            try:
                if not isinstance(name, str) or not _NAME.match(name):
                    raise _Reject("a name is 1-40 of a-z, 0-9 and _, starting with a letter")
                if not isinstance(spec, dict):
                    raise _Reject("must be a mapping")
                out[name] = build(name, spec)
            except _Reject as exc:
                self.issues.append(RuleIssue(qualified, str(exc)))
        return out

    @staticmethod
    def _keys(spec: dict[str, Any], allowed: Iterable[str], required: Iterable[str] = ()) -> None:
        unknown = sorted(map(str, set(spec) - set(allowed)))
        if unknown:
            raise _Reject(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
        missing = [k for k in required if spec.get(k) is None]
        if missing:
            raise _Reject(f"missing {', '.join(missing)}")

    @staticmethod
    def _cel(
        spec: dict[str, Any], key: str, *, profile: bool, known: frozenset[str] | None = None
    ) -> Condition | None:
        if key not in spec or spec[key] is None:
            return None
        try:
            return compile_condition(spec[key], allow_profile=profile, aggregates=known)
        except ConditionError as exc:
            raise _Reject(f"{key}: {_one_line(exc)}") from None

    @staticmethod
    def _duration(spec: dict[str, Any], key: str, default: int) -> int:
        if spec.get(key) is None:
            return default
        try:
            return parse_duration(spec[key])
        except ValueError as exc:
            raise _Reject(f"{key}: {exc}") from None

    @staticmethod
    def _number(spec: dict[str, Any], key: Any) -> float:
        """A finite number of sensible size: points, caps and thresholds feed scores and state."""
        value = spec.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Reject(f"{key} must be a number, got {_short(value)}")
        if value != value or abs(value) > MAX_RULE_NUMBER:  # NaN, infinities, absurd sizes
            raise _Reject(f"{key} must be a finite number up to {MAX_RULE_NUMBER:g}, got {_short(value)}")
        return value

    @staticmethod
    def _on(spec: dict[str, Any], *, required: bool = True) -> tuple[EventKey, ...]:
        value = spec.get("on")
        if value is None:
            if required:
                raise _Reject("missing on (e.g. page, track:Order Completed, or a list)")
            return ()
        items = value if isinstance(value, list) else [value]
        keys: list[EventKey] = []
        for item in items:
            if not isinstance(item, str) or not item.strip():
                raise _Reject(f"on: not an event selector: {_short(item)}")
            kind, _, name = item.partition(":")
            kind = kind.strip()
            if kind != "*" and kind not in EVENT_TYPES:
                raise _Reject(
                    f"on: unknown event type {_short(kind)}; use one of {', '.join(sorted(EVENT_TYPES))} or *"
                )
            keys.append((kind, name.strip() or None))
        return tuple(keys)

    # -- sections -----------------------------------------------------------------------------
    def _options(self, spec: dict[str, Any]) -> Options:
        defaults = Options()
        values: dict[str, Any] = {}
        parsers: dict[str, tuple[str, Callable[[Any], Any]]] = {
            "consent_trait": ("consent_trait", _text),
            "allowed_lateness": ("allowed_lateness_ms", parse_duration),
            "idempotency_ttl": ("idempotency_ttl_ms", parse_duration),
            "trigger_history": ("trigger_history", lambda v: _positive_int(v, 1000)),
            "interaction_types": ("interaction_types", lambda v: frozenset(_event_types(v))),
            "leave_events": ("leave_events", lambda v: tuple(_text_list(v))),
            "heartbeat_events": ("heartbeat_events", lambda v: tuple(_text_list(v))),
            "max_tags": ("max_tags", lambda v: _positive_int(v, 500)),
            "traits": ("keep_traits", lambda v: None if v in ("all", "*") else frozenset(_text_list(v))),
            "redirect_ttl": ("redirect_ttl_ms", parse_duration),
            "timer_stale_after": ("timer_stale_after_ms", parse_duration),
        }
        for key, value in spec.items():
            if key not in parsers:
                self.issues.append(
                    RuleIssue(f"options.{key}", f"unknown option; known: {', '.join(sorted(parsers))}")
                )
                continue
            attr, parse = parsers[key]
            try:
                values[attr] = parse(value)
            except (ValueError, TypeError) as exc:
                self.issues.append(RuleIssue(f"options.{key}", str(exc)))
        return Options(**{**defaults.__dict__, **values})

    def _aggregate(self, name: str, spec: dict[str, Any]) -> AggregateRule:
        self._keys(
            spec, ("on", "where", "op", "value", "window", "bucket", "id", "description"), ("on", "op")
        )
        op = spec["op"]
        if not isinstance(op, str) or op not in agg.OP_KINDS:
            raise _Reject(f"op must be one of {', '.join(agg.OP_KINDS)}, got {_short(op)}")
        value = self._cel(spec, "value", profile=False)
        if op != "count" and value is None:
            raise _Reject(f"op {op} needs a value expression")
        window = self._duration(spec, "window", 0)
        bucket = self._duration(spec, "bucket", agg.auto_bucket_ms(window)) if window else 0
        if window and not 0 < bucket <= window:
            raise _Reject("bucket must be positive and no longer than the window")
        if window and agg.bucket_count(window, bucket) > 400:
            raise _Reject(f"{agg.bucket_count(window, bucket)} buckets is too many for one profile (max 400)")
        sid = spec.get("id", storage_id(name))
        if not isinstance(sid, str) or not re.match(r"^[a-z0-9_]{1,16}$", sid):
            raise _Reject("id must be 1-16 of a-z, 0-9 and _")
        owner = self._storage_ids.setdefault(sid, name)
        if owner != name:
            raise _Reject(f"storage id {sid!r} is also {owner!r}'s: set another `id:`")
        return AggregateRule(
            name, op, self._on(spec), self._cel(spec, "where", profile=False), value, window, bucket, sid
        )

    def _tag(self, name: str, spec: dict[str, Any], known: frozenset[str]) -> TagRule:
        self._keys(spec, ("on", "where", "if", "name", "ttl", "description"), ("on",))
        name_expr = self._cel(spec, "name", profile=False)
        return TagRule(
            name,
            self._on(spec),
            self._cel(spec, "where", profile=False),
            self._cel(spec, "if", profile=True, known=known),
            None if name_expr else name,
            name_expr,
            self._duration(spec, "ttl", 0),
        )

    def _score(self, spec: Any, known: frozenset[str]) -> ScoreSpec | None:
        if spec is None:
            return None
        if not isinstance(spec, dict):
            self.issues.append(RuleIssue("score", "must be a mapping"))
            return None
        try:
            self._keys(spec, ("half_life", "behaviour", "attributes", "cap", "description"))
            half_life = self._duration(spec, "half_life", 30 * 86_400_000)
            cap = None if spec.get("cap") is None else self._number(spec, "cap")
        except _Reject as exc:
            self.issues.append(RuleIssue("score", str(exc)))
            return None

        def behaviour(name: str, item: dict[str, Any]) -> PointsRule:
            self._keys(item, ("on", "where", "points", "description"), ("on", "points"))
            return PointsRule(
                name, self._on(item), self._cel(item, "where", profile=False), self._number(item, "points")
            )

        def attribute(name: str, item: dict[str, Any]) -> AttributeRule:
            self._keys(item, ("if", "points", "description"), ("if", "points"))
            condition = self._cel(item, "if", profile=True, known=known)
            assert condition is not None
            if condition.needs.event is None or condition.needs.event:
                raise _Reject("if: attribute points read only the profile (traits), not the event")
            if condition.needs.profile is None or set(condition.needs.profile) - {"traits"}:
                raise _Reject("if: attribute points read only profile.traits")
            return AttributeRule(name, condition, self._number(item, "points"))

        sub_raw = {
            "score.behaviour": spec.get("behaviour") or {},
            "score.attributes": spec.get("attributes") or {},
        }
        saved, self.raw = self.raw, sub_raw
        try:
            points = tuple(self._named("score.behaviour", behaviour).values())
            attributes = tuple(self._named("score.attributes", attribute).values())
        finally:
            self.raw = saved
        return ScoreSpec(half_life, points, attributes, cap)

    def _tier(self, spec: Any, known: frozenset[str]) -> TierSpec | None:
        if spec is None:
            return None
        try:
            if not isinstance(spec, dict):
                raise _Reject("must be a mapping")
            self._keys(
                spec,
                ("aggregate", "levels", "inactive_after", "downgrade_steps", "description"),
                ("aggregate", "levels"),
            )
            if not isinstance(spec["aggregate"], str) or spec["aggregate"] not in known:
                raise _Reject(f"aggregate {_short(spec['aggregate'])} is not a (valid) aggregate")
            levels = spec["levels"]
            if not isinstance(levels, dict) or not levels:
                raise _Reject("levels must map tier names to the amount they are strictly above")
            ordered = sorted(((str(k), self._number(levels, k)) for k in levels), key=lambda kv: -kv[1])
            steps = spec.get("downgrade_steps", 1)
            if not isinstance(steps, int) or steps < 0:
                raise _Reject("downgrade_steps must be a whole number >= 0")
            return TierSpec(
                spec["aggregate"], tuple(ordered), self._duration(spec, "inactive_after", 0), steps
            )
        except _Reject as exc:
            self.issues.append(RuleIssue("tier", str(exc)))
            return None

    def _trigger(
        self, name: str, spec: dict[str, Any], known: frozenset[str], tier: TierSpec | None
    ) -> TriggerRule:
        kind = spec.get("kind", "event")
        if not isinstance(kind, str) or kind not in TRIGGER_KINDS:
            raise _Reject(f"kind must be one of {', '.join(sorted(TRIGGER_KINDS))}, got {_short(kind)}")
        common = ("kind", "marketing", "cooldown", "values", "if", "description")
        allowed = {
            "event": (*common, "on", "where"),
            "delayed": (*common, "on", "where", "delay"),
            "dwell": (*common, "where", "above"),
            "score_crossed": (*common, "above"),
            "tier_upgrade": common,
            "tier_downgrade": common,
        }[kind]
        required = {
            "delayed": ("on", "delay"),
            "dwell": ("above",),
            "event": ("on",),
            "score_crossed": ("above",),
        }.get(kind, ())
        self._keys(spec, allowed, required)
        marketing = spec.get("marketing", True)
        if not isinstance(marketing, bool):
            raise _Reject("marketing must be true or false")
        event_time = kind in ("event", "delayed")
        when = self._cel(spec, "if", profile=True, known=known)
        if when and not event_time and (when.needs.event is None or when.needs.event):
            raise _Reject(f"if: a {kind} trigger fires without an event; read only `profile`")
        values_spec = spec.get("values") or {}
        if not isinstance(values_spec, dict):
            raise _Reject("values must map names to CEL expressions")
        values = []
        for key, expr in values_spec.items():
            condition = self._cel({str(key): expr}, str(key), profile=True, known=known)
            if condition is None:
                raise _Reject(f"values.{key}: needs a CEL expression")
            if not event_time and (condition.needs.event is None or condition.needs.event):
                raise _Reject(f"values.{key}: a {kind} trigger fires without an event; read only `profile`")
            values.append((str(key), condition))
        if kind.startswith("tier_") and tier is None:
            raise _Reject(f"a {kind} trigger needs a valid tier section")
        if kind == "tier_downgrade" and tier is not None and not tier.inactive_after_ms:
            raise _Reject("a tier_downgrade trigger needs tier.inactive_after")
        threshold = self._duration(spec, "above", 0) if kind == "dwell" else 0
        if kind == "score_crossed":
            if self.raw.get("score") is None:
                raise _Reject("a score_crossed trigger needs a score section")
            threshold = self._number(spec, "above")
        delay = self._duration(spec, "delay", 0) if kind == "delayed" else 0
        if kind == "delayed" and delay <= 0:
            raise _Reject("delay must be positive")
        return TriggerRule(
            name,
            kind,
            self._on(spec) if event_time else (),
            self._cel(spec, "where", profile=False),
            when,
            marketing,
            self._duration(spec, "cooldown", 0),
            delay,
            threshold,
            tuple(values),
        )


def _short(value: Any) -> str:
    """repr of a bad value for a message, bounded (a rules file can hold anything)."""
    try:
        text = repr(value)
    except Exception:  # repr of a huge int raises ValueError; any object's repr may fail
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a non-empty string, got {_short(value)}")
    return value


def _text_list(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [_text(v) for v in items]


def _event_types(value: Any) -> list[str]:
    items = _text_list(value)
    bad = [i for i in items if i not in EVENT_TYPES]
    if bad:
        raise ValueError(f"unknown event type(s) {bad}")
    return items


def _positive_int(value: Any, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
        raise ValueError(f"must be a whole number from 1 to {limit}, got {_short(value)}")
    return value


# -- hot reload -----------------------------------------------------------------------------------


class RuleSet:
    """The rules in force, reloaded when the file's mtime (or size) changes.

    :meth:`current` stats the file at most every ``check_every_s`` seconds. A reload that
    cannot be read or parsed keeps every rule in force; one whose rules are partly rejected
    uses the good ones and keeps the previous version of each rejected rule. The first load
    must succeed as a file (a :class:`RulesError` otherwise); rejected rules are only logged
    and listed in :attr:`issues` unless ``strict``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_RULES_PATH,
        *,
        check_every_s: float = 1.0,
        strict: bool = False,
    ) -> None:
        self.path = Path(path)
        self.check_every_s = check_every_s
        self.version = 1
        self.last_reload_error: str | None = None
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._rules = load_rules_file(self.path, strict=strict)
        self._checked = time.monotonic()

    @classmethod
    def static(cls, rules: Rules) -> RuleSet:
        """A RuleSet that never reloads (tests, benchmarks, rules built from text)."""
        self = cls.__new__(cls)
        self.path = Path(rules.source)
        self.check_every_s = float("inf")
        self.version = 1
        self.last_reload_error = None
        self._lock = threading.Lock()
        self._stamp = None
        self._rules = rules
        self._checked = time.monotonic()
        return self

    @property
    def issues(self) -> list[RuleIssue]:
        return self._rules.issues

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def current(self) -> Rules:
        """The rules in force, after a reload if the file changed since the last check."""
        if time.monotonic() - self._checked >= self.check_every_s:
            self.reload()
        return self._rules

    def reload(self, *, force: bool = False) -> bool:
        """Reload now if the file changed (or ``force``); True when new rules took effect."""
        with self._lock:
            self._checked = time.monotonic()
            stamp = self._stat()
            if stamp is None:
                self.last_reload_error = f"{self.path}: missing; keeping the rules in force"
                log.error("%s", self.last_reload_error)
                return False
            if stamp == self._stamp and not force:
                return False
            self._stamp = stamp
            try:
                rules = load_rules_file(self.path, previous=self._rules)
            except RulesError as exc:
                self.last_reload_error = f"{exc}; keeping the rules in force"
                log.error("rules reload failed: %s", self.last_reload_error)
                return False
            self._rules = rules
            self.version += 1
            self.last_reload_error = None
            log.info(
                "rules reloaded from %s (version %d, %d rules, %d rejected)",
                self.path,
                self.version,
                rules.rule_count,
                len(rules.issues),
            )
            return True
