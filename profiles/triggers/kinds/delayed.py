"""``kind: delayed``: an event schedules the trigger; the sweep fires it ``delay`` later.

    post_purchase_7d: {kind: delayed, on: "track:Order Completed", delay: 7d}

The waiting trigger lives in the profile's transient hash (``d:<timer id>``) with a ``d``
timer; ``if:`` and values are evaluated when it is scheduled, on the profile as of the event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from profiles import layout
from profiles.rules import checks
from profiles.rules.checks import Reject
from profiles.triggers import records
from profiles.triggers.kinds.base import CompileContext, EventTriggerKind

if TYPE_CHECKING:
    from profiles.evaluation import Moment
    from profiles.rules.model import TriggerRule
    from profiles.state import ProfileState


@dataclass(frozen=True)
class DelayedParams:
    delay_ms: int  # from the event's time to firing


class DelayedKind(EventTriggerKind):
    names = ("delayed",)
    keys = ("on", "where", "delay")
    required = ("on", "delay")
    timer = layout.TIMER_DELAYED
    order = 50

    @classmethod
    def compile(cls, kind: str, spec: dict[str, Any], context: CompileContext) -> DelayedParams:
        delay = checks.duration(spec, "delay", 0)
        if delay <= 0:
            raise Reject("delay must be positive")
        return DelayedParams(delay)

    def on_event(self, m: Moment) -> None:
        st = m.st
        for rule in m.cands.of_kind("delayed"):
            values = self.matches(m, rule)
            if values is None:
                continue
            tid = records.timer_id(rule.name, m.message_id)
            if tid not in st.delayed:
                due = m.ts + rule.params.delay_ms
                if self._cooled(st, rule, due):
                    continue
                st.schedule(tid, {"r": rule.name, "m": m.message_id, "t": m.ts, "due": due, "v": values}, due)

    def _cooled(self, st: ProfileState, rule: TriggerRule, due: int) -> bool:
        """A delayed trigger due within its cooldown of one already waiting would be suppressed
        when it fires: not scheduling it keeps a burst of orders from filling the profile with timers."""
        if not rule.cooldown_ms:
            return False
        for waiting in st.delayed.values():
            if waiting.get("r") == rule.name and abs(due - waiting.get("due", 0)) < rule.cooldown_ms:
                self.engine.result.suppressed_cooldown += 1
                return True
        return False

    def on_timer(self, st: ProfileState, ref: str | None, due: float, watermark: int, stale: bool) -> None:
        if ref is None:
            return
        payload = st.delayed.get(ref)
        st.unschedule(ref)
        if payload is None or not st.exists:
            return
        rule = self.engine.rules.triggers.get(payload.get("r", ""))
        if rule is None or rule.kind != "delayed":
            return
        if stale:
            self.engine.result.stale_timers += 1
            return
        self.engine.firing.fire(
            st,
            rule,
            ref=payload["m"],
            event_time=int(payload["due"]),
            message_id=payload["m"],
            values=v if isinstance(v := payload.get("v"), dict) else {},
            fired_at=watermark,
        )


KIND = DelayedKind
