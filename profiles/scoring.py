"""Decaying behaviour points and tiers: pure functions of event time.

A score is stored as ``(value, ref_ms)``: its value at ``ref_ms``. Points decay with a half-life,
so the value at ``t >= ref`` is ``value * 2 ** (-(t - ref) / half_life)``. Adding points at any
time (also a late event before ``ref``) keeps the representation exact: the sum of every
contribution decayed to ``t``, independent of arrival order, and two profiles merge by decaying
both to the later ``ref`` and adding. ``profiles/lua/`` mirrors :func:`add_points` and :func:`merge`.
"""

from __future__ import annotations

from collections.abc import Sequence

Score = tuple[float, int]


def decay_factor(elapsed_ms: int, half_life_ms: int) -> float:
    """How much of a point is left after ``elapsed_ms`` (1.0 for no decay or negative time)."""
    if half_life_ms <= 0 or elapsed_ms <= 0:
        return 1.0
    return 2.0 ** (-elapsed_ms / half_life_ms)


def add_points(state: Score | None, points: float, ts_ms: int, half_life_ms: int) -> Score:
    if state is None:
        return (float(points), ts_ms)
    value, ref = state
    if ts_ms >= ref:
        return (value * decay_factor(ts_ms - ref, half_life_ms) + points, ts_ms)
    return (value + points * decay_factor(ref - ts_ms, half_life_ms), ref)


def score_at(state: Score | None, as_of_ms: int, half_life_ms: int) -> float:
    """The behaviour score as of ``as_of_ms`` (never grows backwards in time)."""
    if state is None:
        return 0.0
    value, ref = state
    return value * decay_factor(as_of_ms - ref, half_life_ms)


def merge(a: Score | None, b: Score | None, half_life_ms: int) -> Score | None:
    if a is None or b is None:
        return a or b
    ref = max(a[1], b[1])
    return (score_at(a, ref, half_life_ms) + score_at(b, ref, half_life_ms), ref)


def encode(state: Score) -> str:
    return f"{state[0]:.10g}|{state[1]}"


def decode(text: str) -> Score:
    value, _, ref = text.partition("|")
    return (float(value), int(ref))


def tier_for(amount: float, levels: Sequence[tuple[str, float]]) -> str | None:
    """The first level (highest first) whose threshold ``amount`` is strictly above, else None."""
    for name, above in levels:
        if amount > above:
            return name
    return None


def tier_rank(tier: str | None, levels: Sequence[tuple[str, float]]) -> int:
    """0 for no tier, len(levels) for the top one."""
    for i, (name, _) in enumerate(levels):
        if name == tier:
            return len(levels) - i
    return 0


def downgrade(tier: str | None, levels: Sequence[tuple[str, float]], steps: int) -> str | None:
    """``steps`` levels lower, never below the lowest level (a customer stays a customer)."""
    rank = tier_rank(tier, levels)
    if rank == 0:
        return tier
    new_rank = max(1, rank - steps)
    return levels[len(levels) - new_rank][0]
