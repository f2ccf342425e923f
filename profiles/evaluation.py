"""Running CEL conditions for one batch: contexts that never raise, memos, errors as counts.

A condition that fails to evaluate counts as an error of its rule (``Rules.eval_errors``,
``BatchResult.rule_errors``) and as "no"; it never stops the batch. Event-only conditions are
memoized on the event members they read (:class:`LazyEvent`), so a page view of a popular
path evaluates them once. :class:`Moment` is one event being applied to one profile: what the
engine's steps and the trigger kinds share while handling it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import cel

from profiles import jsonsafe
from profiles.conditions import FAILED, MEMO_LIMIT, Condition, EvalError
from profiles.events import EventView

if TYPE_CHECKING:
    from profiles.facts import Facts
    from profiles.result import BatchResult
    from profiles.rules.index import Candidates
    from profiles.rules.model import Rules, TriggerRule
    from profiles.state import ProfileState

log = logging.getLogger(__name__)

_MISS = object()


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


class LazyEvent:
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


class Evaluator:
    """Evaluates conditions of one :class:`Rules`, counting failures into one batch's result."""

    def __init__(self, rules: Rules, result: BatchResult) -> None:
        self.rules = rules
        self.result = result

    def _failed(self, rule: str) -> None:
        self.rules.count_error(rule)
        self.result.rule_errors += 1

    def eval(self, condition: Condition, ctx: Any, rule: str) -> Any:
        """The condition's value, or None when it fails (counted)."""
        try:
            return condition(ctx)
        except EvalError as exc:
            self._failed(rule)
            log.debug("rule %s failed: %s", rule, exc)
            return None

    def test(self, condition: Condition | None, ctx: Any, rule: str) -> bool:
        """No condition, or one that is exactly true."""
        return condition is None or self.eval(condition, ctx, rule) is True

    def on_event(self, condition: Condition, lazy: LazyEvent, rule: str) -> Any:
        """An event-only expression, memoized on the event members it reads when it can be."""
        if lazy.results is not None:
            value = lazy.results.get(id(condition), _MISS)
            if value is not _MISS:
                if value is FAILED:
                    self._failed(rule)
                    return None
                return value
        members = condition.memo_keys
        key = lazy.view.memo_key(members) if members is not None else None
        if key is None:
            return self.eval(condition, lazy.event_ctx(), rule)
        value = condition.memo.get(key, _MISS)
        if value is _MISS:
            try:
                value = condition(lazy.event_ctx())
            except EvalError as exc:
                log.debug("rule %s failed: %s", rule, exc)
                value = FAILED
            condition.remember(key, value)
        if value is FAILED:
            self._failed(rule)
            return None
        return value

    def where(self, condition: Condition | None, lazy: LazyEvent, rule: str) -> bool:
        """A ``where:`` filter on the event alone."""
        return condition is None or self.on_event(condition, lazy, rule) is True

    def values(self, rule: TriggerRule, ctx: Any) -> dict[str, Any]:
        """A trigger's ``values:``, each None when it fails."""
        return {key: self.eval(expr, ctx, f"triggers.{rule.name}") for key, expr in rule.values}


class Moment:
    """One event being applied to one profile: what the engine's steps and the trigger kinds share."""

    __slots__ = (
        "_lazy",
        "_profile_ctx",
        "cands",
        "etype",
        "facts",
        "in_order",
        "interaction",
        "message_id",
        "name",
        "st",
        "ts",
        "view",
    )

    def __init__(
        self,
        facts: Facts,
        st: ProfileState,
        view: EventView,
        cands: Candidates,
        *,
        etype: str,
        name: str | None,
        ts: int,
        in_order: bool,
        interaction: bool,
    ) -> None:
        self.facts = facts
        self.st = st
        self.view = view
        self.cands = cands
        self.etype = etype
        self.name = name
        self.ts = ts
        self.in_order = in_order
        self.interaction = interaction
        self.message_id: str = view.raw.get("message_id") or ""
        self._lazy: LazyEvent | None = None
        self._profile_ctx: Any = None

    @property
    def lazy(self) -> LazyEvent:
        """The event's memoized conditions and CEL context (made on first use)."""
        if self._lazy is None:
            self._lazy = LazyEvent(self.view, self.cands)
        return self._lazy

    def profile_ctx(self) -> Any:
        """``profile`` as of the event (and ``event`` if the rules read it), built once per change."""
        if self._profile_ctx is None:
            cands = self.cands
            variables = {"profile": self.facts.profile(self.st, cands.profile_needs, self.ts)}
            if cands.profile_rules_read_event:
                variables["event"] = self.view.build(cands.event_needs)
            self._profile_ctx = safe_context(variables)
        return self._profile_ctx

    def profile_changed(self) -> None:
        """Later rules of this event must see the change (a new tag)."""
        self._profile_ctx = None
