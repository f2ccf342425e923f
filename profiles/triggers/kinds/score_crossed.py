"""``kind: score_crossed``: fire when an event lifts the lead score above ``above``.

    sales_ready: {kind: score_crossed, above: 50}

Compared as of the event's time: the score just before the event (behaviour points decayed
to then, plus attribute points of the traits before it) and just after. Only events that
can change the score are looked at (behaviour points, identify). ``if:`` reads the profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from profiles import scoring
from profiles.rules import checks
from profiles.rules.checks import Reject
from profiles.triggers.kinds.base import CompileContext, TriggerKind

if TYPE_CHECKING:
    from profiles.engine import Engine
    from profiles.evaluation import Moment
    from profiles.rules.model import TriggerRule


@dataclass(frozen=True)
class ScoreCrossedParams:
    above: float  # the score it fires above


class ScoreCrossedKind(TriggerKind):
    names = ("score_crossed",)
    keys = ("above",)
    required = ("above",)
    order = 10

    @classmethod
    def compile(cls, kind: str, spec: dict[str, Any], context: CompileContext) -> ScoreCrossedParams:
        if not context.has_score:
            raise Reject("a score_crossed trigger needs a score section")
        return ScoreCrossedParams(checks.number(spec, "above"))

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self._rules: tuple[TriggerRule, ...] = ()  # the rules this event may make fire
        self._before: Any = None  # (behaviour score state, attribute points) before the event

    def before_event(self, m: Moment) -> None:
        rules = self.engine.rules
        self._rules = (
            rules.trigger_of_kind("score_crossed") if (m.cands.points or m.etype == "identify") else ()
        )
        self._before = (m.st.score, self.engine.facts.attribute_points(m.st)) if self._rules else None

    def on_event(self, m: Moment) -> None:
        """Fire the rules whose threshold this event's points or traits crossed upwards."""
        if not self._rules:
            return
        engine, st, ts = self.engine, m.st, m.ts
        after = engine.facts.score(st, ts)
        if all(after <= rule.params.above for rule in self._rules):
            return
        spec = engine.rules.score
        assert spec is not None
        old = scoring.score_at(self._before[0], ts, spec.half_life_ms) + self._before[1]
        old = round(min(old, spec.cap) if spec.cap is not None else old, 3)
        for rule in self._rules:
            above = rule.params.above
            if old <= above < after:
                values = {"score": after, "above": above}
                if engine.firing.allows(st, rule, ts, values):
                    engine.firing.fire(
                        st, rule, ref=m.message_id, event_time=ts, message_id=m.message_id, values=values
                    )


KIND = ScoreCrossedKind
