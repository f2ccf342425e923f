"""The stream's own answer for a list of events: the engine applied per person, in offset order."""

from __future__ import annotations

from typing import Any

from profiles.engine import Engine
from profiles.rules.model import Rules
from profiles.state import ProfileState
from tests.unit.analytics.lakes import PARTITIONS, partition_of


class EngineStates:
    """Profiles as the engine leaves them (no Redis: the engine's own in-memory ops)."""

    def __init__(self, rules: Rules, events: list[dict[str, Any]], skew_ms: int = 300_000) -> None:
        self.engine = Engine(rules, 0, event_time_skew_ms=skew_ms)
        self.states: dict[str, ProfileState] = {}
        offsets = [0] * PARTITIONS
        for event in events:
            part = partition_of(event.get("oneid"))
            st = self.states.setdefault(event["oneid"], ProfileState(event["oneid"]))
            self.engine.on_event(st, part, offsets[part], event)
            offsets[part] += 1

    def read(self, oneids: list[str], as_of_ms: int) -> list[dict[str, Any] | None]:
        """A ``LiveRead`` over these states (``get_profile``'s snapshot)."""
        found = [self.states.get(o) for o in oneids]
        return [self.engine.snapshot(st, as_of_ms) if st is not None and st.exists else None for st in found]
