"""``kind: event`` (the default): fire at once on an event matching ``on:``, ``where:`` and ``if:``.

    welcome: {on: identify, if: profile.traits.email != null}

Its idempotency key is the event's messageId, so a replayed event never fires it twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from profiles.triggers.kinds.base import EventTriggerKind

if TYPE_CHECKING:
    from profiles.evaluation import Moment


class EventKind(EventTriggerKind):
    names = ("event",)
    order = 40

    def on_event(self, m: Moment) -> None:
        for rule in m.cands.of_kind("event"):
            values = self.matches(m, rule)
            if values is not None:
                self.engine.firing.fire(
                    m.st, rule, ref=m.message_id, event_time=m.ts, message_id=m.message_id, values=values
                )


KIND = EventKind
