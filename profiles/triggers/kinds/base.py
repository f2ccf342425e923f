"""What a trigger kind is: its YAML keys and checks (compile time), its hooks (run time).

A kind is a :class:`TriggerKind` subclass in its own module of this package, exported as
``KIND``; the registry (``kinds/__init__.py``) finds it, the compiler asks it for its keys and
checks, the index asks which events it listens to, and the engine makes one instance per
batch and calls its hooks:

    before_event(m)   before the event changes the profile (remember what to compare with)
    on_event(m)       after aggregates and points; kinds run in ``order``, tags at TAGS_ORDER
    on_timer(...)     a timer of its letter (``timer``) came due in the sweep
    finish_profile()  after a profile's last event of the batch (keep a timer, say)

Hooks fire through ``engine.firing`` and read facts through ``engine.facts``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from profiles.conditions import Condition

if TYPE_CHECKING:
    from profiles.engine import Engine
    from profiles.evaluation import Moment
    from profiles.rules.model import EventKey, TierSpec, TriggerRule
    from profiles.state import ProfileState

COMMON_KEYS = ("kind", "marketing", "purpose", "cooldown", "values", "if", "description")
TAGS_ORDER = 30  # event hooks with a lower order run before tag rules (and do not see their tags)


@dataclass(frozen=True)
class CompileContext:
    """What a kind's checks may need of the rest of the file."""

    tier: TierSpec | None  # the valid tier section, if any
    has_score: bool  # the file has a score section


class TriggerKind:
    """Base of every trigger kind; the defaults are those of a kind that does nothing."""

    names: ClassVar[tuple[str, ...]] = ()  # the ``kind:`` values it handles
    keys: ClassVar[tuple[str, ...]] = ()  # YAML keys beyond COMMON_KEYS
    required: ClassVar[tuple[str, ...]] = ()  # of those, the ones it cannot do without
    fires_on_event: ClassVar[bool] = False  # `on:` selects it; its `if`/values may read `event`
    timer: ClassVar[str | None] = None  # the letter of its timers in the due zsets
    order: ClassVar[int] = 100  # when on_event runs among the kinds (TAGS_ORDER: tag rules)

    # -- compile time ------------------------------------------------------------------------
    @classmethod
    def compile(cls, kind: str, spec: dict[str, Any], context: CompileContext) -> Any:
        """Check the kind's own keys (raise ``checks.Reject``); returns ``TriggerRule.params``."""
        return None

    @classmethod
    def listens(cls, rule: TriggerRule, event_type: str, hit: Callable[[tuple[EventKey, ...]], bool]) -> bool:
        """Whether an event of this type (``hit``: it matches an ``on:``) is one of its candidates."""
        return False

    @classmethod
    def indexed_conditions(cls, rule: TriggerRule) -> tuple[list[Condition], list[Condition]]:
        """(event-only, profile-reading) conditions evaluated when a candidate event arrives."""
        early = [rule.where] if rule.where else []
        late = [rule.when] if rule.when and cls.fires_on_event else []
        late += [c for _, c in rule.values] if cls.fires_on_event else []
        return early, late

    # -- run time ------------------------------------------------------------------------------
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def before_event(self, m: Moment) -> None:
        """Before the event changes the profile."""

    def on_event(self, m: Moment) -> None:
        """After the event's aggregates and points (see ``order``)."""

    def on_timer(self, st: ProfileState, ref: str | None, due: float, watermark: int, stale: bool) -> None:
        """One of its timers came due; ``stale``: due too long ago to fire (counted, dropped)."""

    def finish_profile(self, st: ProfileState) -> None:
        """After the profile's last event of the batch."""


class EventTriggerKind(TriggerKind):
    """A kind that fires on events selected by ``on:`` and ``where:``, with ``if`` on the profile."""

    keys: ClassVar[tuple[str, ...]] = ("on", "where")
    required: ClassVar[tuple[str, ...]] = ("on",)
    fires_on_event = True

    @classmethod
    def listens(cls, rule: TriggerRule, event_type: str, hit: Callable[[tuple[EventKey, ...]], bool]) -> bool:
        return hit(rule.on)

    def matches(self, m: Moment, rule: TriggerRule) -> dict[str, Any] | None:
        """The trigger's values when its ``where`` and ``if`` hold for this event, else None."""
        name = f"triggers.{rule.name}"
        evaluator = self.engine.evaluator
        if not evaluator.where(rule.where, m.lazy, name):
            return None
        if rule.when is not None and not evaluator.test(rule.when, m.profile_ctx(), name):
            return None
        return evaluator.values(rule, m.profile_ctx()) if rule.values else {}
