"""The idle-profile tick: graph first, then each collected profile's state; bounded per tick."""

from __future__ import annotations

from streams import idle_profiles
from streams.idle_profiles import collect_idle_profiles


class Graph:
    def __init__(self, idle: int) -> None:
        self.idle = [f"o{i}" for i in range(idle)]
        self.calls: list[tuple[int, int, int]] = []

    def collect_idle_anonymous(self, now_ms: int, idle_ms: int, limit: int) -> list[str]:
        self.calls.append((now_ms, idle_ms, limit))
        taken, self.idle = self.idle[:limit], self.idle[limit:]
        return taken


class Store:
    def __init__(self) -> None:
        self.deleted: list[str] = []

    def delete_profile(self, oneid: str) -> int:
        self.deleted.append(oneid)
        return 1


def test_every_collected_profile_loses_its_state_and_a_tick_stops_when_nothing_is_left(monkeypatch) -> None:
    monkeypatch.setattr(idle_profiles, "BATCH", 3)
    graph, store = Graph(idle=7), Store()
    assert collect_idle_profiles(graph, store, 1_000, 90) == 7  # type: ignore[arg-type]
    assert store.deleted == [f"o{i}" for i in range(7)]
    assert graph.calls == [(1_000, 90, 3)] * 3


def test_a_tick_is_bounded_and_the_rest_waits_for_the_next(monkeypatch) -> None:
    monkeypatch.setattr(idle_profiles, "BATCH", 2)
    graph, store = Graph(idle=100), Store()
    assert collect_idle_profiles(graph, store, 1_000, 90) == 2 * idle_profiles.ROUNDS  # type: ignore[arg-type]
    assert len(graph.idle) == 100 - 2 * idle_profiles.ROUNDS
