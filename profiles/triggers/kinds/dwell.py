"""``kind: dwell``: fire when a person stays on a matching page longer than ``above``.

    pricing_dwell: {kind: dwell, where: event.path.startsWith("/pricing"), above: 180s}

A page/screen event whose page matches ``where`` opens a view of its session; the next page,
a heartbeat or a leave event measures it, and a ``v`` timer lets the sweep fire it when
nobody does (``profiles/dwell.py`` holds the pure view logic). ``if:`` and values read only
the profile, as of the moment the threshold was passed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from profiles import dwell, layout
from profiles.evaluation import safe_context
from profiles.rules import checks
from profiles.triggers.kinds.base import CompileContext, TriggerKind

if TYPE_CHECKING:
    from collections.abc import Callable

    from profiles.evaluation import Moment
    from profiles.rules.model import EventKey, TriggerRule
    from profiles.state import ProfileState


@dataclass(frozen=True)
class DwellParams:
    above_ms: int  # time on the page after which it fires


class DwellKind(TriggerKind):
    names = ("dwell",)
    keys = ("where", "above")
    required = ("above",)
    timer = layout.TIMER_VIEW
    order = 20

    @classmethod
    def compile(cls, kind: str, spec: dict[str, Any], context: CompileContext) -> DwellParams:
        return DwellParams(checks.duration(spec, "above", 0))

    @classmethod
    def listens(cls, rule: TriggerRule, event_type: str, hit: Callable[[tuple[EventKey, ...]], bool]) -> bool:
        return event_type in dwell.PAGE_TYPES

    def on_event(self, m: Moment) -> None:
        """Open, measure or close the session's page view."""
        st = m.st
        candidates = m.cands.of_kind("dwell")
        if not (candidates or (st.views and m.etype == "track")):
            return
        options = self.engine.rules.options
        if m.etype in dwell.PAGE_TYPES:
            where = self.engine.evaluator.where
            matching = {
                r.name: r.params.above_ms for r in candidates if where(r.where, m.lazy, f"triggers.{r.name}")
            }
            if not matching and not st.views:
                return
            sid = m.view.session()
            current = st.views.get(sid)
            if current is None and not matching:
                return
            new, hits = dwell.on_page(
                current,
                sid=sid,
                ts_ms=m.ts,
                path=m.view.path,
                message_id=m.message_id,
                matching=matching,
                in_order=m.in_order,
            )
        elif m.etype == "track" and (m.name in options.leave_events or m.name in options.heartbeat_events):
            sid = m.view.session()
            current = st.views.get(sid)
            if current is None:
                return
            if m.name in options.leave_events:
                new, hits = dwell.on_leave(current, m.ts)
            else:
                new, hits = dwell.on_heartbeat(current, m.ts)
        else:
            return
        if new is not current:
            st.set_view(sid, new)
        for hit in hits:
            self._fire(st, hit, None)

    def on_timer(self, st: ProfileState, ref: str | None, due: float, watermark: int, stale: bool) -> None:
        """Nothing heard from the session up to the watermark: fire what passed its threshold."""
        if ref is None:
            return
        current = st.views.get(ref)
        if current is None or not st.exists:
            st.set_view(ref, None)
            return
        new, hits = dwell.on_watermark(current, watermark)
        st.set_view(ref, new, expect=st.raw_views.get(ref, ""))
        for hit in hits:
            if stale:
                self.engine.result.stale_timers += 1
            else:
                self._fire(st, hit, watermark)

    def _fire(self, st: ProfileState, hit: dwell.DwellHit, fired_at: int | None) -> None:
        engine = self.engine
        rule = engine.rules.triggers.get(hit.rule)
        if rule is None or rule.kind != "dwell":
            return
        values: dict[str, Any] = {
            "path": hit.view.path,
            "dwell_s": round(hit.dwell_ms / 1000, 3),
            "closed": hit.closed,
        }
        if rule.values or rule.when is not None:
            ctx = safe_context({"profile": engine.facts.profile(st, None, hit.event_time)})
            if rule.when is not None and not engine.evaluator.test(rule.when, ctx, f"triggers.{rule.name}"):
                return
            values.update(engine.evaluator.values(rule, ctx))
        engine.firing.fire(
            st,
            rule,
            ref=hit.view.message_id,
            event_time=hit.event_time,
            message_id=hit.view.message_id,
            values=values,
            fired_at=fired_at,
        )


KIND = DwellKind
