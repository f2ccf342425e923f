"""Compiling a parsed rules file: sections -> the frozen model, every CEL expression compiled once.

Each rule is checked on its own (:mod:`profiles.rules.checks`); a bad one becomes a
:class:`RuleIssue` naming it and the others compile. Triggers are compiled with the help of
their kind (``profiles/triggers/kinds/``), which declares its own keys and checks.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from typing import Any

from profiles import aggregates as agg
from profiles.durations import parse_duration
from profiles.exceptions import RuleIssue
from profiles.rules import checks
from profiles.rules.checks import Reject
from profiles.rules.model import (
    AggregateRule,
    AttributeRule,
    Options,
    PointsRule,
    Purpose,
    Rules,
    ScoreSpec,
    SegmentRule,
    TagRule,
    TierSpec,
    TriggerRule,
)
from profiles.triggers import kinds as trigger_kinds
from profiles.triggers.kinds.base import COMMON_KEYS, CompileContext
from touchstream.text import NAME

_NAME = NAME
SECTIONS = ("version", "options", "aggregates", "tags", "score", "tier", "triggers", "segments")
MAX_SQL_CHARS = 20_000
_SQL_START = re.compile(r"^\s*(?:--[^\n]*\n\s*)*(?:select|with|from)\b", re.IGNORECASE)


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


def _positive_duration(value: Any) -> int:
    ms = parse_duration(value)
    if ms <= 0:
        raise ValueError("must be a positive duration")
    return ms


def _purposes(value: Any) -> tuple[Purpose, ...]:
    """``options.consent_purposes``: ``{name: {trait: T, default: true|false}}`` (default: no)."""
    if not isinstance(value, dict) or not value:
        raise ValueError("must map purpose names to {trait: ..., default: true|false}")
    out = []
    for name, spec in value.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"purpose names are 1-40 of a-z, 0-9 and _, got {checks.short(name)}")
        if not isinstance(spec, dict) or set(spec) - {"trait", "default"} or "trait" not in spec:
            raise ValueError(f"{name}: must be {{trait: <identify trait>, default: true|false}}")
        default = spec.get("default", False)
        if not isinstance(default, bool):
            raise ValueError(f"{name}.default must be true or false")
        out.append(Purpose(name, checks.text(spec["trait"]), default))
    return tuple(out)


def _kept_traits(value: Any) -> frozenset[str] | None:
    """``options.traits``: the identify traits kept (``all``/``*``: every one)."""
    return None if value in ("all", "*") else frozenset(checks.text_list(value))


class Compiler:
    """One pass over a parsed rules file: every section compiled, every bad rule an issue."""

    def __init__(self, raw: dict[str, Any], source: str) -> None:
        self.raw = raw
        self.source = source
        self.issues: list[RuleIssue] = []
        self._storage_ids: dict[str, str] = {}

    def compile(self) -> Rules:
        for key in self.raw:
            if key not in SECTIONS:
                self.issues.append(RuleIssue(str(key), f"unknown section; known: {', '.join(SECTIONS)}"))
        options = self._options(self._section("options"))
        self._purposes = frozenset(p.name for p in options.purposes)
        aggregates = self._named("aggregates", self._aggregate)
        known = frozenset(aggregates)
        tags = tuple(self._named("tags", lambda n, s: self._tag(n, s, known)).values())
        score = self._score(self.raw.get("score"), known)
        tier = self._tier(self.raw.get("tier"), known)
        triggers = self._named("triggers", lambda n, s: self._trigger(n, s, known, tier))
        segments = self._named("segments", lambda n, s: self._segment(n, s, known))
        return Rules(options, aggregates, tags, score, tier, triggers, self.issues, self.raw, self.source,
                     segments=segments)

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
                    raise Reject("a name is 1-40 of a-z, 0-9 and _, starting with a letter")
                if not isinstance(spec, dict):
                    raise Reject("must be a mapping")
                out[name] = build(name, spec)
            except Reject as exc:
                self.issues.append(RuleIssue(qualified, str(exc)))
        return out

    def _purpose(self, spec: dict[str, Any], default: str | None) -> str | None:
        """A rule's ``purpose:``: one of options.consent_purposes (``default`` when absent)."""
        purpose = spec.get("purpose", default)
        if purpose is not None and purpose not in self._purposes:
            raise Reject(f"purpose must be one of {', '.join(sorted(self._purposes))} "
                         f"(options.consent_purposes), got {checks.short(purpose)}")
        return purpose

    # -- sections -----------------------------------------------------------------------------
    def _options(self, spec: dict[str, Any]) -> Options:
        defaults = Options()
        values: dict[str, Any] = {}
        parsers: dict[str, tuple[str, Callable[[Any], Any]]] = {
            "consent_trait": ("consent_trait", checks.text),
            "allowed_lateness": ("allowed_lateness_ms", parse_duration),
            "idempotency_ttl": ("idempotency_ttl_ms", parse_duration),
            "trigger_history": ("trigger_history", lambda v: checks.positive_int(v, 1000)),
            "interaction_types": ("interaction_types", lambda v: frozenset(checks.event_types(v))),
            "leave_events": ("leave_events", lambda v: tuple(checks.text_list(v))),
            "heartbeat_events": ("heartbeat_events", lambda v: tuple(checks.text_list(v))),
            "max_tags": ("max_tags", lambda v: checks.positive_int(v, 500)),
            "traits": ("keep_traits", _kept_traits),
            "redirect_ttl": ("redirect_ttl_ms", parse_duration),
            "timer_stale_after": ("timer_stale_after_ms", parse_duration),
            "segment_recheck": ("segment_recheck_ms", _positive_duration),
            "consent_purposes": ("purposes", _purposes),
            "consent_events": ("consent_events", lambda v: tuple(checks.text_list(v))),
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
        checks.keys(
            spec, ("on", "where", "op", "value", "window", "bucket", "id", "description"), ("on", "op")
        )
        op = spec["op"]
        if not isinstance(op, str) or op not in agg.OP_KINDS:
            raise Reject(f"op must be one of {', '.join(agg.OP_KINDS)}, got {checks.short(op)}")
        value = checks.cel(spec, "value", profile=False)
        if op != "count" and value is None:
            raise Reject(f"op {op} needs a value expression")
        window = checks.duration(spec, "window", 0)
        bucket = checks.duration(spec, "bucket", agg.auto_bucket_ms(window)) if window else 0
        if window and not 0 < bucket <= window:
            raise Reject("bucket must be positive and no longer than the window")
        if window and agg.bucket_count(window, bucket) > 400:
            raise Reject(f"{agg.bucket_count(window, bucket)} buckets is too many for one profile (max 400)")
        sid = spec.get("id", storage_id(name))
        if not isinstance(sid, str) or not re.match(r"^[a-z0-9_]{1,16}$", sid):
            raise Reject("id must be 1-16 of a-z, 0-9 and _")
        owner = self._storage_ids.setdefault(sid, name)
        if owner != name:
            raise Reject(f"storage id {sid!r} is also {owner!r}'s: set another `id:`")
        return AggregateRule(
            name, op, checks.on(spec), checks.cel(spec, "where", profile=False), value, window, bucket, sid
        )

    def _tag(self, name: str, spec: dict[str, Any], known: frozenset[str]) -> TagRule:
        checks.keys(spec, ("on", "where", "if", "name", "ttl", "description"), ("on",))
        name_expr = checks.cel(spec, "name", profile=False)
        return TagRule(
            name,
            checks.on(spec),
            checks.cel(spec, "where", profile=False),
            checks.cel(spec, "if", profile=True, known=known),
            None if name_expr else name,
            name_expr,
            checks.duration(spec, "ttl", 0),
        )

    def _score(self, spec: Any, known: frozenset[str]) -> ScoreSpec | None:
        if spec is None:
            return None
        if not isinstance(spec, dict):
            self.issues.append(RuleIssue("score", "must be a mapping"))
            return None
        try:
            checks.keys(spec, ("half_life", "behaviour", "attributes", "cap", "description"))
            half_life = checks.duration(spec, "half_life", 30 * 86_400_000)
            cap = None if spec.get("cap") is None else checks.number(spec, "cap")
        except Reject as exc:
            self.issues.append(RuleIssue("score", str(exc)))
            return None

        def behaviour(name: str, item: dict[str, Any]) -> PointsRule:
            checks.keys(item, ("on", "where", "points", "description"), ("on", "points"))
            return PointsRule(
                name, checks.on(item), checks.cel(item, "where", profile=False), checks.number(item, "points")
            )

        def attribute(name: str, item: dict[str, Any]) -> AttributeRule:
            checks.keys(item, ("if", "points", "description"), ("if", "points"))
            condition = checks.cel(item, "if", profile=True, known=known)
            assert condition is not None
            if condition.needs.event is None or condition.needs.event:
                raise Reject("if: attribute points read only the profile (traits), not the event")
            if condition.needs.profile is None or set(condition.needs.profile) - {"traits"}:
                raise Reject("if: attribute points read only profile.traits")
            return AttributeRule(name, condition, checks.number(item, "points"))

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
                raise Reject("must be a mapping")
            checks.keys(
                spec,
                ("aggregate", "levels", "inactive_after", "downgrade_steps", "description"),
                ("aggregate", "levels"),
            )
            if not isinstance(spec["aggregate"], str) or spec["aggregate"] not in known:
                raise Reject(f"aggregate {checks.short(spec['aggregate'])} is not a (valid) aggregate")
            levels = spec["levels"]
            if not isinstance(levels, dict) or not levels:
                raise Reject("levels must map tier names to the amount they are strictly above")
            ordered = sorted(((str(k), checks.number(levels, k)) for k in levels), key=lambda kv: -kv[1])
            steps = spec.get("downgrade_steps", 1)
            if not isinstance(steps, int) or steps < 0:
                raise Reject("downgrade_steps must be a whole number >= 0")
            return TierSpec(
                spec["aggregate"], tuple(ordered), checks.duration(spec, "inactive_after", 0), steps
            )
        except Reject as exc:
            self.issues.append(RuleIssue("tier", str(exc)))
            return None

    def _trigger(
        self, name: str, spec: dict[str, Any], known: frozenset[str], tier: TierSpec | None
    ) -> TriggerRule:
        kind_name = spec.get("kind", "event")
        if not isinstance(kind_name, str) or kind_name not in trigger_kinds.NAMES:
            known_kinds = ", ".join(sorted(trigger_kinds.NAMES))
            raise Reject(f"kind must be one of {known_kinds}, got {checks.short(kind_name)}")
        kind = trigger_kinds.get(kind_name)
        checks.keys(spec, (*COMMON_KEYS, *kind.keys), kind.required)
        marketing = spec.get("marketing", True)
        if not isinstance(marketing, bool):
            raise Reject("marketing must be true or false")
        purpose = self._purpose(spec, "marketing" if marketing else None)
        event_time = kind.fires_on_event
        when = checks.cel(spec, "if", profile=True, known=known)
        if when and not event_time and (when.needs.event is None or when.needs.event):
            raise Reject(f"if: a {kind_name} trigger fires without an event; read only `profile`")
        values_spec = spec.get("values") or {}
        if not isinstance(values_spec, dict):
            raise Reject("values must map names to CEL expressions")
        values = []
        for key, expr in values_spec.items():
            condition = checks.cel({str(key): expr}, str(key), profile=True, known=known)
            if condition is None:
                raise Reject(f"values.{key}: needs a CEL expression")
            if not event_time and (condition.needs.event is None or condition.needs.event):
                raise Reject(
                    f"values.{key}: a {kind_name} trigger fires without an event; read only `profile`"
                )
            values.append((str(key), condition))
        params = kind.compile(kind_name, spec, CompileContext(tier, self.raw.get("score") is not None))
        return TriggerRule(
            name,
            kind_name,
            checks.on(spec) if event_time else (),
            checks.cel(spec, "where", profile=False),
            when,
            marketing,
            checks.duration(spec, "cooldown", 0),
            tuple(values),
            params,
            purpose,
        )

    def _segment(self, name: str, spec: dict[str, Any], known: frozenset[str]) -> SegmentRule:
        """``{if: <CEL over profile>}`` (stream) or ``{sql: SELECT oneid ...}`` (lake), never both."""
        checks.keys(spec, ("if", "sql", "description", "purpose"))
        if (spec.get("if") is None) == (spec.get("sql") is None):
            raise Reject("a segment has either `if:` (CEL over the profile) or `sql:` (a lake query)")
        description = spec.get("description") or ""
        if not isinstance(description, str):
            raise Reject("description must be text")
        purpose = self._purpose(spec, None)
        if spec.get("sql") is not None:
            sql = spec["sql"]
            if not isinstance(sql, str) or not _SQL_START.match(sql) or len(sql) > MAX_SQL_CHARS:
                raise Reject(f"sql must be one SELECT query (at most {MAX_SQL_CHARS} characters) "
                             "returning a oneid column")
            return SegmentRule(name, None, sql.strip().rstrip(";"), description, purpose)
        when = checks.cel(spec, "if", profile=True, known=known, now=True)
        assert when is not None
        if when.needs.event is None or when.needs.event:
            raise Reject("if: a segment is a condition on the profile alone; it cannot read `event`")
        return SegmentRule(name, when, None, description, purpose)
