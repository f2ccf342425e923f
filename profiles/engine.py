"""The rules engine: what a batch of resolved events (or a timer sweep) does to profiles.

Pure logic over :class:`ProfileState` copies: no Redis and no clock (times are event times;
``now_ms`` only stamps ``fired_at``). For each event, in offset order:

1. skip it if its offset is at or below the profile's stored offset for the partition
   (a replay), or if it is older than the person's last event by more than the allowed
   lateness (counted, skipped; its offset still advances);
2. apply first/last seen, identify traits, aggregates and behaviour points;
3. measure open page views (dwell);
4. evaluate tags, then event and delayed triggers, on the profile as of the event's time;
5. detect a tier crossing.

Every change is recorded as an op (see ``state.py``); :mod:`profiles.store` sends them in one
``apply`` call, where Redis re-checks offsets, cooldowns and idempotency keys atomically.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import cel

from profiles import aggregates as agg
from profiles import dwell, jsonsafe, scoring
from profiles import triggers as trig
from profiles.conditions import (
    EVENT_FIELDS,
    EVENT_OBJECTS,
    FAILED,
    MEMO_LIMIT,
    PROFILE_FIELDS,
    Condition,
    EvalError,
    Refs,
)
from profiles.rules import Candidates, Rules, TriggerRule
from profiles.state import ProfileState

log = logging.getLogger(__name__)

_PAGE_FIELDS = ("url", "referrer", "title", "search")
_MISS = object()
# top-level members read as text (type, names, ids): anything else, or text with a lone
# surrogate, is treated as absent / cleaned before the engine or CEL sees it
_TEXT_FIELDS = ("type", "event", "name", "message_id", "anonymous_id", "user_id", "group_id", "source")
MAX_EVENT_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z; later (or negative) is invalid
MAX_MEMO_KEY_CHARS = 2048  # longer member values are evaluated, not memoized (memos are bounded by count)


@dataclass
class BatchResult:
    """What one batch did. ``triggers`` are the ones Redis confirmed (fired exactly once)."""

    triggers: list[dict[str, Any]] = field(default_factory=list)
    skipped_replayed: int = 0
    skipped_late: int = 0
    suppressed_marketing: int = 0
    suppressed_cooldown: int = 0
    duplicates: int = 0
    applied: int = 0
    profiles: int = 0
    rule_errors: int = 0
    stale_timers: int = 0
    skipped_invalid: int = 0
    traits_dropped: int = 0


def _object(text: Any) -> dict[str, Any]:
    return jsonsafe.loads_object(text)


def _normalized(event: dict[str, Any]) -> dict[str, Any]:
    """The event itself when its text members are text (the common case), else a cleaned copy."""
    get = event.get
    for k in _TEXT_FIELDS:
        v = get(k)
        if v is not None and not (type(v) is str and v.isascii()):
            break
    else:
        return event  # hot path: every member absent or ASCII text
    bad = [k for k in _TEXT_FIELDS if (v := get(k)) is not None and not _clean_text(v)]
    if not bad:
        return event
    out = dict(event)
    for k in bad:
        v = out[k]
        out[k] = jsonsafe.fix_text(v) if isinstance(v, str) else None
    return out


def _clean_text(value: Any) -> bool:
    return type(value) is str and (value.isascii() or jsonsafe.fix_text(value) is value)


def _valid_time(value: Any) -> int | None:
    """An epoch-ms int in range, else None (bools, floats, text, negative or absurd times)."""
    if type(value) is not int or not 0 <= value <= MAX_EVENT_TIME_MS:
        return None
    return value


def event_time(event: dict[str, Any], skew_ms: int) -> int | None:
    """The time the engine files an event under: its timestamp, but never later than receipt + skew.

    A client clock (or a hostile client) dating one event a day ahead would otherwise make the
    person's real events "late" for a day. None: no valid timestamp (the event is skipped).
    """
    ts = _valid_time(event.get("timestamp"))
    if ts is None:
        return None
    received = _valid_time(event.get("received_at"))
    if received is not None and ts > received + skew_ms:
        return received + skew_ms
    return ts


def safe_context(variables: dict[str, Any]) -> Any:
    """A CEL context that never raises: values CEL cannot convert are cleaned, else left out."""
    try:
        return cel.Context(variables)
    except Exception as exc:  # the runtime raises ValueError/TypeError/...: all mean "clean it"
        log.debug("CEL context needs cleaning: %s", type(exc).__name__)
    try:
        return cel.Context(jsonsafe.clean(variables))
    except Exception:
        log.debug("CEL context unusable even cleaned; conditions on it count as failed")
        return cel.Context({})


class EventView:
    """An event dict with its JSON members parsed on first use and a ``build`` for CEL."""

    __slots__ = ("_context", "_keys", "_page", "_properties", "_traits", "raw")

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self._properties: dict[str, Any] | None = None
        self._traits: dict[str, Any] | None = None
        self._context: dict[str, Any] | None = None
        self._page: dict[str, Any] | None = None
        self._keys: dict[tuple[str, ...], tuple[Any, ...]] = {}

    @property
    def properties(self) -> dict[str, Any]:
        if self._properties is None:
            self._properties = _object(self.raw.get("properties"))
        return self._properties

    @property
    def traits(self) -> dict[str, Any]:
        if self._traits is None:
            self._traits = _object(self.raw.get("traits"))
        return self._traits

    @property
    def context(self) -> dict[str, Any]:
        if self._context is None:
            self._context = _object(self.raw.get("context"))
        return self._context

    def page(self) -> dict[str, Any]:
        """path/url/referrer/title/search: Segment's page properties, else ``context.page``."""
        if self._page is None:
            props = self.properties
            ctx_page = self.context.get("page") if ("path" not in props and "url" not in props) else None
            source = ctx_page if isinstance(ctx_page, dict) else props
            page = {
                k: source.get(k) if isinstance(source.get(k), str) else "" for k in ("path", *_PAGE_FIELDS)
            }
            if not page["path"] and page["url"]:
                page["path"] = _url_path(page["url"])
            self._page = page
        return self._page

    @property
    def path(self) -> str:
        return self.page()["path"]

    def session(self) -> str:
        # context is large (userAgent, library, ip...): parse it only if it names a session
        raw_context = self.raw.get("context")
        context = self.context if isinstance(raw_context, str) and "ession" in raw_context else None
        return dwell.session_key(self.raw, context, self.properties)

    def memo_key(self, members: tuple[str, ...]) -> tuple[Any, ...] | None:
        """The values a memoizable condition reads (segments come from the path); None when they
        are too long to keep as a memo key (the condition is then simply evaluated)."""
        found = self._keys.get(members, _MISS)
        if found is not _MISS:
            return found
        out = []
        size = 0
        for name in members:
            if name == "path" or name == "segments" or name in _PAGE_FIELDS:
                value = self.page()["path" if name == "segments" else name]
            else:
                value = self.raw.get(name)
            size += len(value) if isinstance(value, str) else 0
            out.append(value)
        found = self._keys[members] = tuple(out) if size <= MAX_MEMO_KEY_CHARS else None
        return found

    def build(self, needs: Refs | None) -> dict[str, Any]:
        """The ``event`` variable holding only the members ``needs`` lists (None: all)."""
        names = EVENT_FIELDS if needs is None else needs.keys()
        out: dict[str, Any] = {}
        for name in names:
            if name in EVENT_OBJECTS:
                obj = getattr(self, name)
                subs = None if needs is None else needs[name]
                out[name] = obj if subs is None else {k: obj[k] for k in subs if k in obj}
            elif name == "path" or name in _PAGE_FIELDS:
                out[name] = self.page()[name]
            elif name == "segments":
                out[name] = [s for s in self.path.split("/") if s]
            elif name == "session":
                out[name] = self.session()
            else:
                out[name] = jsonsafe.clean(self.raw.get(name))
        return out


def _url_path(url: str) -> str:
    """The path of a URL; an unparsable one (``http://[``) has none."""
    try:
        return urlsplit(url).path
    except ValueError:
        return ""


class _Lazy:
    """The event's CEL context, built only if some condition misses its memo."""

    __slots__ = ("_ctx", "needs", "results", "view")

    def __init__(self, view: EventView, cands: Candidates) -> None:
        self.view = view
        self.needs = cands.event_needs
        self._ctx: Any = None
        self.results: dict[int, Any] | None = None
        members = cands.memo_members
        key = view.memo_key(members) if members is not None else None
        if key is not None:
            results = cands.memo.get(key)
            if results is None:
                ctx = self.event_ctx()
                results = {}
                for condition in cands.event_conditions:
                    try:
                        results[id(condition)] = condition(ctx)
                    except EvalError as exc:
                        log.debug("condition failed: %s", exc)
                        results[id(condition)] = FAILED
                if len(cands.memo) >= MEMO_LIMIT:
                    cands.memo.clear()
                cands.memo[key] = results
            self.results = results

    def event_ctx(self) -> Any:
        if self._ctx is None:
            self._ctx = safe_context({"event": self.view.build(self.needs)})
        return self._ctx


class Engine:
    """Evaluates one batch (or one sweep) against one compiled :class:`Rules`."""

    def __init__(
        self,
        rules: Rules,
        now_ms: int,
        *,
        event_time_skew_ms: int = 300_000,
        max_traits_per_profile: int = 500,
    ) -> None:
        self.rules = rules
        self.options = rules.options
        self.now_ms = now_ms
        self.event_time_skew_ms = event_time_skew_ms
        self.max_traits_per_profile = max_traits_per_profile
        self.result = BatchResult()
        self.pending: list[dict[str, Any]] = []  # triggers sent to Redis, by op index
        self._interacted: set[str] = set()
        self._tier_changed: set[str] = set()

    # -- evaluation helpers ------------------------------------------------------------------
    def _eval(self, condition: Condition, ctx: Any, rule: str) -> Any:
        try:
            return condition(ctx)
        except EvalError as exc:
            self.rules.count_error(rule)
            self.result.rule_errors += 1
            log.debug("rule %s failed: %s", rule, exc)
            return None

    def _test(self, condition: Condition | None, ctx: Any, rule: str) -> bool:
        return condition is None or self._eval(condition, ctx, rule) is True

    def _on_event(self, condition: Condition, lazy: _Lazy, rule: str) -> Any:
        """An event-only expression, memoized on the event members it reads when it can be."""
        if lazy.results is not None:
            value = lazy.results.get(id(condition), _MISS)
            if value is not _MISS:
                if value is FAILED:
                    self.rules.count_error(rule)
                    self.result.rule_errors += 1
                    return None
                return value
        members = condition.memo_keys
        key = lazy.view.memo_key(members) if members is not None else None
        if key is None:
            return self._eval(condition, lazy.event_ctx(), rule)
        value = condition.memo.get(key, _MISS)
        if value is _MISS:
            try:
                value = condition(lazy.event_ctx())
            except EvalError as exc:
                log.debug("rule %s failed: %s", rule, exc)
                value = FAILED
            condition.remember(key, value)
        if value is FAILED:
            self.rules.count_error(rule)
            self.result.rule_errors += 1
            return None
        return value

    def _where(self, condition: Condition | None, lazy: _Lazy, rule: str) -> bool:
        return condition is None or self._on_event(condition, lazy, rule) is True

    # -- profile facts -----------------------------------------------------------------------
    def aggregate(self, st: ProfileState, name: str, as_of: int) -> Any:
        rule = self.rules.aggregates[name]
        return agg.value_as_of(rule.op, st.buckets.get(name, {}), as_of, rule.window_ms, rule.bucket_ms)

    def attribute_points(self, st: ProfileState) -> float:
        score = self.rules.score
        if score is None or not score.attributes:
            return 0.0
        if st.attribute_points is not None and st.attribute_points[0] == st.traits_version:
            return st.attribute_points[1]
        names = self.rules.attribute_traits
        if names is None:
            key: tuple[Any, ...] = tuple(sorted((k, v[1]) for k, v in st.traits.items()))
        else:
            key = tuple(st.trait_text(n) for n in names)
        cache = self.rules.attribute_cache
        cached = cache.get(key)
        if cached is None:
            traits = (
                {n: st.trait(n) for n in st.traits}
                if names is None
                else {n: st.trait(n) for n in names if st.trait_text(n) is not None}
            )
            ctx = safe_context({"profile": {"traits": traits}})
            cached = sum(
                a.points for a in score.attributes if self._test(a.when, ctx, f"score.attributes.{a.rule}")
            )
            if len(cache) >= 4096:
                cache.clear()
            if _key_chars(key) <= MAX_MEMO_KEY_CHARS:
                cache[key] = cached
        st.attribute_points = (st.traits_version, cached)
        return cached

    def score(self, st: ProfileState, as_of: int) -> float:
        spec = self.rules.score
        if spec is None:
            return 0.0
        total = scoring.score_at(st.score, as_of, spec.half_life_ms) + self.attribute_points(st)
        if spec.cap is not None:
            total = min(total, spec.cap)
        return round(total, 3)

    def tier(self, st: ProfileState, as_of: int) -> str | None:
        spec = self.rules.tier
        if spec is None or spec.aggregate not in self.rules.aggregates:
            return None
        base = scoring.tier_for(self.aggregate(st, spec.aggregate, as_of) or 0, spec.levels)
        li = st.last_interaction
        if spec.inactive_after_ms and li is not None and as_of - li >= spec.inactive_after_ms:
            return scoring.downgrade(base, spec.levels, spec.downgrade_steps)
        return base

    def consent(self, st: ProfileState) -> bool:
        return trig.has_consent(st.trait(self.options.consent_trait))

    def profile(self, st: ProfileState, needs: Refs | None, as_of: int) -> dict[str, Any]:
        """The ``profile`` variable as of ``as_of`` with only the members ``needs`` lists."""
        names = PROFILE_FIELDS if needs is None else needs.keys()
        out: dict[str, Any] = {}
        for name in names:
            subs = None if needs is None else needs.get(name)
            if name == "traits":
                keys = st.traits.keys() if subs is None else (k for k in subs if st.trait_text(k) is not None)
                out[name] = {k: st.trait(k) for k in keys}
            elif name == "agg":
                keys = self.rules.aggregates.keys() if subs is None else subs
                out[name] = {k: self.aggregate(st, k, as_of) for k in keys if k in self.rules.aggregates}
            elif name == "tags":
                out[name] = st.active_tags(as_of)
            elif name == "score":
                out[name] = self.score(st, as_of)
            elif name == "tier":
                out[name] = self.tier(st, as_of)
            elif name == "first_seen":
                out[name] = st.first_seen
            elif name == "last_seen":
                out[name] = st.last_seen
            elif name == "last_interaction":
                out[name] = st.last_interaction
            elif name == "consent":
                out[name] = self.consent(st)
        return out

    def snapshot(self, st: ProfileState, as_of: int) -> dict[str, Any]:
        """Everything about a profile as of a time (``ProfileStore.get_profile``)."""
        view = self.profile(st, None, as_of)
        return {
            "oneid": st.oneid,
            "as_of": as_of,
            "first_seen": st.first_seen,
            "last_seen": st.last_seen,
            "last_interaction": st.last_interaction,
            "traits": view["traits"],
            "aggregates": view["agg"],
            "tags": view["tags"],
            "score": view["score"],
            "tier": view["tier"],
            "consent": view["consent"],
        }

    # -- firing ------------------------------------------------------------------------------
    def _values(self, rule: TriggerRule, ctx: Any) -> dict[str, Any]:
        return {key: self._eval(expr, ctx, f"triggers.{rule.name}") for key, expr in rule.values}

    def fire(
        self,
        st: ProfileState,
        rule: TriggerRule,
        *,
        ref: str,
        event_time: int,
        message_id: str | None,
        values: dict[str, Any],
        fired_at: int | None = None,
    ) -> None:
        """Consent, cooldown and idempotency as known here; Redis checks the last two again."""
        if rule.marketing and not self.consent(st):
            self.result.suppressed_marketing += 1
            return
        until = st.cooldowns.get(rule.name)
        if until is not None and event_time < until:
            self.result.suppressed_cooldown += 1
            return
        record = trig.build(
            rule=rule.name,
            oneid=st.oneid,
            ref=ref,
            event_time=event_time,
            fired_at=self.now_ms if fired_at is None else fired_at,
            message_id=message_id or "",
            marketing=rule.marketing,
            values=values,
        )
        if not message_id:
            record["message_id"] = record["idempotency_key"]
        field_name = trig.key_field(record["idempotency_key"])
        if field_name in st.fired:
            self.result.duplicates += 1
            return
        index = len(self.pending)
        self.pending.append(record)
        st.fire(
            field_name,
            rule.name,
            event_time + rule.cooldown_ms if rule.cooldown_ms else 0,
            event_time,
            event_time + self.options.idempotency_ttl_ms,
            trig.history_entry(record),
            index,
        )

    # -- events ------------------------------------------------------------------------------
    def on_event(self, st: ProfileState, partition: int, offset: int, event: dict[str, Any]) -> None:
        """Apply one event (see the module doc); an event without a valid time is counted, skipped."""
        ts = event_time(event, self.event_time_skew_ms)
        if ts is None:
            self.result.skipped_invalid += 1
            log.warning("profile batch: event at offset %s has no valid timestamp; skipped", offset)
            return
        event = _normalized(event)
        stamped = event.get("oneid")
        if not isinstance(stamped, str):
            stamped = None
        guard = str(partition) if stamped in (None, st.oneid) else f"{partition}:{stamped}"
        if offset <= st.offset(guard):
            self.result.skipped_replayed += 1
            return
        st.advance(guard, offset)
        st.begin(offset, guard)
        options = self.options
        if st.last_seen is not None and ts < st.last_seen - options.allowed_lateness_ms:
            self.result.skipped_late += 1
            return
        in_order = st.last_seen is None or ts >= st.last_seen
        etype = event.get("type") or ""
        name = event.get("event") if etype == "track" else event.get("name")
        interaction = etype in options.interaction_types
        cands = self.rules.candidates(etype, name)
        tier_before = self._tier_before(st, cands, ts, interaction)
        st.seen(ts, interaction)
        if interaction:
            self._interacted.add(st.oneid)
        view = EventView(event)
        crossing = (
            self.rules.trigger_of_kind("score_crossed") if (cands.points or etype == "identify") else ()
        )
        before = (st.score, self.attribute_points(st)) if crossing else None
        if etype == "identify":
            self._traits(st, view, ts)
        if cands.empty and not (st.views and etype == "track"):
            if crossing:
                self._score_crossing(st, crossing, before, ts, event.get("message_id") or "")
            if tier_before is not None:
                self._tier_on_event(st, tier_before, ts, event.get("message_id") or "")
            return
        message_id = event.get("message_id") or ""
        lazy = _Lazy(view, cands)
        for a in cands.aggregates:
            rule = f"aggregates.{a.name}"
            if not self._where(a.where, lazy, rule):
                continue
            if a.op == "count":
                value: Any = 1
            else:
                value = self._on_event(a.value, lazy, rule) if a.value else None
                if value is None or (a.kind in ("n", "mn", "mx") and not agg.is_amount(value)):
                    continue
            st.add(
                a.name, a.sid, a.kind, agg.bucket_index(ts, a.bucket_ms), agg.contribution(a.kind, value, ts)
            )
        score = self.rules.score
        if score is not None and cands.points:
            points = sum(
                p.points for p in cands.points if self._where(p.where, lazy, f"score.behaviour.{p.rule}")
            )
            if points:
                st.add_points(points, ts, score.half_life_ms)  # one op for all of the event's points
        if crossing:
            self._score_crossing(st, crossing, before, ts, message_id)
        if cands.dwell or (st.views and etype == "track"):
            self._dwell(st, view, etype, name, ts, in_order, cands.dwell, lazy, message_id)
        if cands.tags or cands.triggers:
            self._profile_rules(st, lazy, cands, ts, message_id)
        if tier_before is not None:
            self._tier_on_event(st, tier_before, ts, message_id)

    def _score_crossing(
        self, st: ProfileState, rules: tuple[TriggerRule, ...], before: Any, ts: int, message_id: str
    ) -> None:
        """Fire ``score_crossed`` rules whose threshold this event's points or traits crossed upwards."""
        after = self.score(st, ts)
        if all(after <= rule.threshold_ms for rule in rules):
            return
        spec = self.rules.score
        assert spec is not None
        old = scoring.score_at(before[0], ts, spec.half_life_ms) + before[1]
        old = round(min(old, spec.cap) if spec.cap is not None else old, 3)
        for rule in rules:
            if old <= rule.threshold_ms < after:
                values = {"score": after, "above": rule.threshold_ms}
                if self._profile_rule_allows(st, rule, ts, values):
                    self.fire(st, rule, ref=message_id, event_time=ts, message_id=message_id, values=values)

    def _traits(self, st: ProfileState, view: EventView, ts: int) -> None:
        """Identify traits, latest event time wins; new keys past the per-profile cap are dropped."""
        keep = self.options.keep_traits
        cap = self.max_traits_per_profile
        for key, value in view.traits.items():
            if keep is not None and key not in keep:
                continue
            if key not in st.traits and len(st.traits) >= cap:
                self.result.traits_dropped += 1
                continue
            st.set_trait(key, ts, jsonsafe.dumps(value))

    def _profile_rules(self, st: ProfileState, lazy: _Lazy, cands: Any, ts: int, message_id: str) -> None:
        full: Any = None

        def full_ctx() -> Any:
            nonlocal full
            if full is None:
                variables = {"profile": self.profile(st, cands.profile_needs, ts)}
                if cands.profile_rules_read_event:
                    variables["event"] = lazy.view.build(cands.event_needs)
                full = safe_context(variables)
            return full

        for t in cands.tags:
            rule = f"tags.{t.rule}"
            if not self._where(t.where, lazy, rule):
                continue
            if t.when is not None and not self._test(t.when, full_ctx(), rule):
                continue
            tag = t.tag
            if t.name is not None:
                produced = self._on_event(t.name, lazy, rule)
                tag = produced if isinstance(produced, str) and 0 < len(produced) <= 60 else None
            if tag:
                was_active = tag in st.tags and (st.tags[tag] == 0 or st.tags[tag] > ts)
                st.tag(tag, ts + t.ttl_ms if t.ttl_ms else 0)
                if not was_active:
                    full = None  # later rules see the new tag
        for g in cands.triggers:
            rule = f"triggers.{g.name}"
            if not self._where(g.where, lazy, rule):
                continue
            if g.when is not None and not self._test(g.when, full_ctx(), rule):
                continue
            values = self._values(g, full_ctx()) if g.values else {}
            if g.kind == "delayed":
                tid = trig.timer_id(g.name, message_id)
                if tid not in st.delayed:
                    due = ts + g.delay_ms
                    if self._cooled_timer(st, g, due):
                        continue
                    st.schedule(tid, {"r": g.name, "m": message_id, "t": ts, "due": due, "v": values}, due)
            else:
                self.fire(st, g, ref=message_id, event_time=ts, message_id=message_id, values=values)

    def _cooled_timer(self, st: ProfileState, rule: TriggerRule, due: int) -> bool:
        """A delayed trigger due within its cooldown of one already waiting would be suppressed
        when it fires: not scheduling it keeps a burst of orders from filling the profile with timers."""
        if not rule.cooldown_ms:
            return False
        for waiting in st.delayed.values():
            if waiting.get("r") == rule.name and abs(due - waiting.get("due", 0)) < rule.cooldown_ms:
                self.result.suppressed_cooldown += 1
                return True
        return False

    def _dwell(
        self,
        st: ProfileState,
        view: EventView,
        etype: str,
        name: str | None,
        ts: int,
        in_order: bool,
        rules: tuple[TriggerRule, ...],
        lazy: _Lazy,
        message_id: str,
    ) -> None:
        options = self.options
        if etype in dwell.PAGE_TYPES:
            matching = {
                r.name: r.threshold_ms for r in rules if self._where(r.where, lazy, f"triggers.{r.name}")
            }
            if not matching and not st.views:
                return
            sid = view.session()
            current = st.views.get(sid)
            if current is None and not matching:
                return
            new, hits = dwell.on_page(
                current,
                sid=sid,
                ts_ms=ts,
                path=view.path,
                message_id=message_id,
                matching=matching,
                in_order=in_order,
            )
        elif etype == "track" and (name in options.leave_events or name in options.heartbeat_events):
            sid = view.session()
            current = st.views.get(sid)
            if current is None:
                return
            if name in options.leave_events:
                new, hits = dwell.on_leave(current, ts)
            else:
                new, hits = dwell.on_heartbeat(current, ts)
        else:
            return
        if new is not current:
            st.set_view(sid, new)
        for hit in hits:
            self._fire_dwell(st, hit, None)

    def _fire_dwell(self, st: ProfileState, hit: dwell.DwellHit, fired_at: int | None) -> None:
        rule = self.rules.triggers.get(hit.rule)
        if rule is None or rule.kind != "dwell":
            return
        values: dict[str, Any] = {
            "path": hit.view.path,
            "dwell_s": round(hit.dwell_ms / 1000, 3),
            "closed": hit.closed,
        }
        if rule.values or rule.when is not None:
            ctx = safe_context({"profile": self.profile(st, None, hit.event_time)})
            if rule.when is not None and not self._test(rule.when, ctx, f"triggers.{rule.name}"):
                return
            values.update(self._values(rule, ctx))
        self.fire(
            st,
            rule,
            ref=hit.view.message_id,
            event_time=hit.event_time,
            message_id=hit.view.message_id,
            values=values,
            fired_at=fired_at,
        )

    def _tier_before(
        self, st: ProfileState, cands: Candidates, ts: int, interaction: bool
    ) -> tuple[Any] | None:
        """The tier to compare with after this event, or None when the event cannot change it.

        Only two things raise a tier: revenue (an event adding to the tier's aggregate: compare
        with the tier just before it) and coming back after an inactivity downgrade (compare
        with the tier last announced). Other events skip the tier entirely.
        """
        spec = self.rules.tier
        if spec is None:
            return None
        if spec.aggregate in cands.aggregate_names:
            return (self.tier(st, ts) if st.exists else None,)
        li = st.last_interaction
        if (
            interaction
            and st.tier is not None
            and spec.inactive_after_ms
            and (li is None or ts - li >= spec.inactive_after_ms)
        ):
            return (st.tier,)
        return None

    def _tier_on_event(self, st: ProfileState, before: tuple[Any], ts: int, message_id: str) -> None:
        """Fire tier_upgrade rules when this event (at ``ts``) raised the tier; remember the tier.

        The tier is evaluated as of the person's latest event, so a late event cannot lower it.
        """
        spec = self.rules.tier
        assert spec is not None and st.last_seen is not None
        as_of = st.last_seen
        old, new = before[0], self.tier(st, as_of)
        new_rank = scoring.tier_rank(new, spec.levels)
        if new_rank > scoring.tier_rank(old, spec.levels):
            for rule in self.rules.trigger_of_kind("tier_upgrade"):
                values = {"from": old, "to": new, "amount": self.aggregate(st, spec.aggregate, as_of)}
                if self._profile_rule_allows(st, rule, as_of, values):
                    self.fire(
                        st,
                        rule,
                        ref=f"{message_id}|{new}",
                        event_time=ts,
                        message_id=message_id,
                        values=values,
                    )
        if new != st.tier:
            st.set_tier(new)
            self._tier_changed.add(st.oneid)

    def _profile_rule_allows(
        self, st: ProfileState, rule: TriggerRule, as_of: int, values: dict[str, Any]
    ) -> bool:
        if rule.when is None and not rule.values:
            return True
        ctx = safe_context({"profile": self.profile(st, None, as_of)})
        if rule.when is not None and not self._test(rule.when, ctx, f"triggers.{rule.name}"):
            return False
        values.update(self._values(rule, ctx))
        return True

    def finish_profile(self, st: ProfileState) -> None:
        """After a profile's events: prune what became unreadable, keep its inactivity timer."""
        if st.groups:
            options = self.options
            st.prune(self.rules.windows, options.allowed_lateness_ms, options.max_tags)
        self._inactivity_timer(st)

    def _inactivity_timer(self, st: ProfileState) -> None:
        """Only profiles whose tier can drop need one."""
        spec = self.rules.tier
        if spec is None or not spec.inactive_after_ms or not self.rules.trigger_of_kind("tier_downgrade"):
            return
        if st.oneid not in self._interacted and st.oneid not in self._tier_changed:
            return
        if not st.groups or st.last_interaction is None:
            return
        if scoring.downgrade(st.tier, spec.levels, spec.downgrade_steps) != st.tier:
            st.inactivity(st.last_interaction + spec.inactive_after_ms)
        elif st.oneid in self._tier_changed:
            st.inactivity(None)

    # -- timers ------------------------------------------------------------------------------
    def on_due(self, st: ProfileState, kind: str, ref: str | None, due: float, watermark: int) -> None:
        """One timer whose due time passed ``watermark`` (the sweep)."""
        st.begin(-1)
        stale = watermark - due > self.options.timer_stale_after_ms
        if kind == "v" and ref is not None:
            self._due_view(st, ref, watermark, stale)
        elif kind == "d" and ref is not None:
            self._due_delayed(st, ref, stale, watermark)
        elif kind == "i":
            self._due_inactive(st, due, watermark, stale)

    def _due_view(self, st: ProfileState, sid: str, watermark: int, stale: bool) -> None:
        current = st.views.get(sid)
        if current is None or not st.exists:
            st.set_view(sid, None)
            return
        new, hits = dwell.on_watermark(current, watermark)
        st.set_view(sid, new, expect=st.raw_views.get(sid, ""))
        for hit in hits:
            if stale:
                self.result.stale_timers += 1
            else:
                self._fire_dwell(st, hit, watermark)

    def _due_delayed(self, st: ProfileState, tid: str, stale: bool, watermark: int) -> None:
        payload = st.delayed.get(tid)
        st.unschedule(tid)
        if payload is None or not st.exists:
            return
        rule = self.rules.triggers.get(payload.get("r", ""))
        if rule is None or rule.kind != "delayed":
            return
        if stale:
            self.result.stale_timers += 1
            return
        self.fire(
            st,
            rule,
            ref=payload["m"],
            event_time=int(payload["due"]),
            message_id=payload["m"],
            values=v if isinstance(v := payload.get("v"), dict) else {},
            fired_at=watermark,
        )

    def _due_inactive(self, st: ProfileState, due: float, watermark: int, stale: bool) -> None:
        spec = self.rules.tier
        li = st.last_interaction
        if spec is None or not spec.inactive_after_ms or li is None or not st.exists:
            st.inactivity(None, expect=due)
            return
        next_due = li + spec.inactive_after_ms
        if next_due > watermark:
            st.inactivity(next_due, expect=due)  # active again since: look later
            return
        new, old = self.tier(st, watermark), st.tier
        if scoring.tier_rank(new, spec.levels) < scoring.tier_rank(old, spec.levels):
            for rule in self.rules.trigger_of_kind("tier_downgrade"):
                values = {"from": old, "to": new, "inactive_days": (watermark - li) // 86_400_000}
                if stale:
                    self.result.stale_timers += 1
                elif self._profile_rule_allows(st, rule, next_due, values):
                    self.fire(
                        st,
                        rule,
                        ref=f"{st.oneid}|{li}|{new}",
                        event_time=next_due,
                        message_id=None,
                        values=values,
                        fired_at=watermark,
                    )
            st.set_tier(new, expect=old, guarded=True)
        st.inactivity(None, expect=due)


def _key_chars(key: tuple[Any, ...]) -> int:
    """Characters of text in a cache key (flat, or of (name, text) pairs)."""
    total = 0
    for part in key:
        for item in part if isinstance(part, tuple) else (part,):
            total += len(item) if isinstance(item, str) else 0
    return total
