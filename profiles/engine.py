"""The rules engine: what a batch of resolved events (or a timer sweep) does to profiles.

Pure logic over :class:`ProfileState` copies: no Redis and no clock (times are event times;
``now_ms`` only stamps ``fired_at``). For each event, in offset order:

1. skip it if its offset is at or below the profile's stored offset for the partition
   (a replay), or if it is older than the person's last event by more than the allowed
   lateness (counted, skipped; its offset still advances);
2. let each trigger kind note what it compares with (``before_event``);
3. apply first/last seen, identify traits, aggregates and behaviour points (``updates.py``);
4. run the trigger kinds' event hooks in their order, tag rules among them
   (score crossed, dwell, then tags, then event, delayed, tier: ``profiles/triggers/kinds/``).

A due timer goes to the kind that owns its letter. Every change is recorded as an op (see
``state.py``); :mod:`profiles.store` sends them in one ``apply`` call, where Redis re-checks
offsets, cooldowns and idempotency keys atomically.

The engine only dispatches; the work lives in ``events.py`` (the event view),
``evaluation.py`` (conditions), ``facts.py`` (score, tier, the ``profile`` variable),
``firing.py`` (consent, cooldown, idempotency) and the kinds.
"""

from __future__ import annotations

import logging
from typing import Any

from profiles.evaluation import Evaluator, Moment
from profiles.events import EventView, event_time, normalized
from profiles.facts import Facts
from profiles.firing import Firing
from profiles.result import BatchResult
from profiles.rules.model import Rules
from profiles.segments.membership import Membership
from profiles.state import ProfileState
from profiles.triggers import kinds as trigger_kinds
from profiles.triggers.kinds.base import TAGS_ORDER, TriggerKind
from profiles.updates import ProfileUpdates

log = logging.getLogger(__name__)

__all__ = ["BatchResult", "Engine", "EventView", "event_time"]


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
        self.result = BatchResult()
        self.evaluator = Evaluator(rules, self.result)
        self.facts = Facts(rules, self.evaluator)
        self.firing = Firing(rules, self.facts, self.evaluator, self.result, now_ms)
        self.updates = ProfileUpdates(
            rules, self.evaluator, self.result, max_traits_per_profile=max_traits_per_profile
        )
        self.interacted: set[str] = set()  # OneIDs with an interaction event in this batch
        self.last_message: dict[str, str] = {}  # OneID -> its last applied event's messageId (segments)
        self.segments = Membership(rules, self.facts, self.evaluator)
        self.kinds = [kind(self) for kind in trigger_kinds.KINDS]
        self._timers = {kind.timer: kind for kind in self.kinds if kind.timer}
        # only the hooks a kind implements are called: they run for every event and profile
        self._before = [k.before_event for k in self.kinds if _implements(k, "before_event")]
        self._finish = [k.finish_profile for k in self.kinds if _implements(k, "finish_profile")]
        hooks = [k for k in self.kinds if _implements(k, "on_event")]
        self._steps = [
            *(kind.on_event for kind in hooks if kind.order < TAGS_ORDER),
            self.updates.tags,
            *(kind.on_event for kind in hooks if kind.order >= TAGS_ORDER),
        ]

    @property
    def pending(self) -> list[dict[str, Any]]:
        """Trigger records sent to Redis, by the index of their ``fire`` op."""
        return self.firing.pending

    def snapshot(self, st: ProfileState, as_of: int) -> dict[str, Any]:
        """Everything about a profile as of a time (``ProfileStore.get_profile``)."""
        return self.facts.snapshot(st, as_of)

    # -- events ------------------------------------------------------------------------------
    def on_event(self, st: ProfileState, partition: int, offset: int, event: dict[str, Any]) -> None:
        """Apply one event (see the module doc); an event without a valid time is counted, skipped."""
        ts = event_time(event, self.event_time_skew_ms)
        if ts is None:
            self.result.skipped_invalid += 1
            log.warning("profile batch: event at offset %s has no valid timestamp; skipped", offset)
            return
        event = normalized(event)
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
        etype = event.get("type") or ""
        name = event.get("event") if etype == "track" else event.get("name")
        self.last_message[st.oneid] = event.get("message_id") or ""
        interaction = etype in options.interaction_types
        m = Moment(
            self.facts,
            st,
            EventView(event),
            self.rules.candidates(etype, name),
            etype=etype,
            name=name,
            ts=ts,
            in_order=st.last_seen is None or ts >= st.last_seen,
            interaction=interaction,
        )
        for before in self._before:
            before(m)
        st.seen(ts, interaction)
        if interaction:
            self.interacted.add(st.oneid)
        if etype == "identify":
            self.updates.traits(st, m.view, ts)
        elif etype == "track" and name in self.options.consent_events:
            self.updates.consent(st, m.view, ts)
        if m.cands.aggregates or m.cands.points:
            self.updates.aggregates_and_points(m)
        for step in self._steps:
            step(m)

    def finish_profile(self, st: ProfileState) -> None:
        """After a profile's events: prune what became unreadable, let kinds keep their timers."""
        if st.groups:
            options = self.options
            st.prune(self.rules.windows, options.allowed_lateness_ms, options.max_tags)
        for finish in self._finish:
            finish(st)

    # -- timers ------------------------------------------------------------------------------
    def on_due(self, st: ProfileState, letter: str, ref: str | None, due: float, watermark: int) -> None:
        """One timer whose due time passed ``watermark`` (the sweep); its kind owns its ``letter``."""
        st.begin(-1)
        stale = watermark - due > self.options.timer_stale_after_ms
        owner = self._timers.get(letter)
        if owner is not None:
            owner.on_timer(st, ref, due, watermark, stale)


def _implements(kind: TriggerKind, hook: str) -> bool:
    """Whether the kind overrides a hook of :class:`TriggerKind` (the base's do nothing)."""
    return getattr(type(kind), hook) is not getattr(TriggerKind, hook)
