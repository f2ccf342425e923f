"""``kind: tier_upgrade`` and ``kind: tier_downgrade``: fire when the tier changes.

    tier_upgraded: {kind: tier_upgrade}
    tier_downgraded: {kind: tier_downgrade}

An upgrade is detected on the event that raised the tier aggregate (or brought a person back
after an inactivity downgrade), evaluated as of the person's latest event so a late event
cannot lower it. A downgrade comes from inactivity: profiles whose tier can drop keep one
``i`` timer at ``last interaction + tier.inactive_after``, which the sweep checks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from profiles import layout, scoring
from profiles.durations import DAY_MS
from profiles.rules.checks import Reject
from profiles.triggers.kinds.base import CompileContext, TriggerKind

if TYPE_CHECKING:
    from profiles.engine import Engine
    from profiles.evaluation import Moment
    from profiles.state import ProfileState


class TierKind(TriggerKind):
    names = ("tier_upgrade", "tier_downgrade")
    timer = layout.TIMER_INACTIVITY
    order = 60

    @classmethod
    def compile(cls, kind: str, spec: dict[str, Any], context: CompileContext) -> None:
        if context.tier is None:
            raise Reject(f"a {kind} trigger needs a valid tier section")
        if kind == "tier_downgrade" and not context.tier.inactive_after_ms:
            raise Reject("a tier_downgrade trigger needs tier.inactive_after")
        return None

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.changed: set[str] = set()  # OneIDs whose tier changed in this batch
        self._before: tuple[Any] | None = None

    def before_event(self, m: Moment) -> None:
        """The tier to compare with after this event, or None when the event cannot change it.

        Only two things raise a tier: revenue (an event adding to the tier's aggregate: compare
        with the tier just before it) and coming back after an inactivity downgrade (compare
        with the tier last announced). Other events skip the tier entirely.
        """
        self._before = None
        spec = self.engine.rules.tier
        if spec is None:
            return
        st = m.st
        if spec.aggregate in m.cands.aggregate_names:
            self._before = (self.engine.facts.tier(st, m.ts) if st.exists else None,)
            return
        li = st.last_interaction
        if (
            m.interaction
            and st.tier is not None
            and spec.inactive_after_ms
            and (li is None or m.ts - li >= spec.inactive_after_ms)
        ):
            self._before = (st.tier,)

    def on_event(self, m: Moment) -> None:
        """Fire tier_upgrade rules when this event raised the tier; remember the tier."""
        if self._before is None:
            return
        engine, st = self.engine, m.st
        spec = engine.rules.tier
        assert spec is not None and st.last_seen is not None
        as_of = st.last_seen
        old, new = self._before[0], engine.facts.tier(st, as_of)
        if scoring.tier_rank(new, spec.levels) > scoring.tier_rank(old, spec.levels):
            for rule in engine.rules.trigger_of_kind("tier_upgrade"):
                values = {"from": old, "to": new, "amount": engine.facts.aggregate(st, spec.aggregate, as_of)}
                if engine.firing.allows(st, rule, as_of, values):
                    engine.firing.fire(
                        st,
                        rule,
                        ref=f"{m.message_id}|{new}",
                        event_time=m.ts,
                        message_id=m.message_id,
                        values=values,
                    )
        if new != st.tier:
            st.set_tier(new)
            self.changed.add(st.oneid)

    def finish_profile(self, st: ProfileState) -> None:
        """Keep the inactivity timer; only profiles whose tier can drop need one."""
        rules = self.engine.rules
        spec = rules.tier
        if spec is None or not spec.inactive_after_ms or not rules.trigger_of_kind("tier_downgrade"):
            return
        if st.oneid not in self.engine.interacted and st.oneid not in self.changed:
            return
        if not st.groups or st.last_interaction is None:
            return
        if scoring.downgrade(st.tier, spec.levels, spec.downgrade_steps) != st.tier:
            st.inactivity(st.last_interaction + spec.inactive_after_ms)
        elif st.oneid in self.changed:
            st.inactivity(None)

    def on_timer(self, st: ProfileState, ref: str | None, due: float, watermark: int, stale: bool) -> None:
        """Inactive since ``tier.inactive_after``: downgrade, and fire tier_downgrade rules."""
        engine = self.engine
        spec = engine.rules.tier
        li = st.last_interaction
        if spec is None or not spec.inactive_after_ms or li is None or not st.exists:
            st.inactivity(None, expect=due)
            return
        next_due = li + spec.inactive_after_ms
        if next_due > watermark:
            st.inactivity(next_due, expect=due)  # active again since: look later
            return
        new, old = engine.facts.tier(st, watermark), st.tier
        if scoring.tier_rank(new, spec.levels) < scoring.tier_rank(old, spec.levels):
            for rule in engine.rules.trigger_of_kind("tier_downgrade"):
                values = {"from": old, "to": new, "inactive_days": (watermark - li) // DAY_MS}
                if stale:
                    engine.result.stale_timers += 1
                elif engine.firing.allows(st, rule, next_due, values):
                    engine.firing.fire(
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


KIND = TierKind
