import pytest

from profiles import scoring
from profiles.durations import DAY_MS

HL = 30 * DAY_MS
LEVELS = (("A", 100_000), ("B", 20_000), ("C", 0))


def test_points_halve_every_half_life():
    state = scoring.add_points(None, 40, 0, HL)
    assert scoring.score_at(state, HL, HL) == pytest.approx(20)
    assert scoring.score_at(state, 2 * HL, HL) == pytest.approx(10)
    assert scoring.score_at(state, 0, HL) == 40
    assert scoring.score_at(state, -DAY_MS, HL) == 40  # never grows backwards


def test_adding_points_does_not_depend_on_arrival_order():
    contributions = [(10, 0), (5, 3 * DAY_MS), (20, 10 * DAY_MS)]
    in_order = None
    for points, ts in contributions:
        in_order = scoring.add_points(in_order, points, ts, HL)
    late = None
    for points, ts in reversed(contributions):  # the later ones arrive first
        late = scoring.add_points(late, points, ts, HL)
    t = 40 * DAY_MS
    expected = sum(p * 0.5 ** ((t - ts) / HL) for p, ts in contributions)
    assert scoring.score_at(in_order, t, HL) == pytest.approx(expected)
    assert scoring.score_at(late, t, HL) == pytest.approx(expected)


def test_merge_is_the_sum_of_both_profiles():
    a = scoring.add_points(None, 30, 0, HL)
    b = scoring.add_points(None, 12, 20 * DAY_MS, HL)
    merged = scoring.merge(a, b, HL)
    t = 50 * DAY_MS
    assert scoring.score_at(merged, t, HL) == pytest.approx(
        scoring.score_at(a, t, HL) + scoring.score_at(b, t, HL)
    )
    assert scoring.merge(None, b, HL) == b


def test_no_half_life_means_no_decay():
    state = scoring.add_points(None, 7, 0, 0)
    assert scoring.score_at(state, 10 * 365 * DAY_MS, 0) == 7


def test_encode_round_trip():
    state = (12.3456789, 1_700_000_000_000)
    assert scoring.decode(scoring.encode(state)) == state


def test_tiers_are_strictly_above_their_threshold():
    assert scoring.tier_for(100_000.01, LEVELS) == "A"
    assert scoring.tier_for(100_000, LEVELS) == "B"
    assert scoring.tier_for(20_000.5, LEVELS) == "B"
    assert scoring.tier_for(0.01, LEVELS) == "C"
    assert scoring.tier_for(0, LEVELS) is None


def test_downgrade_one_step_never_below_lowest():
    assert scoring.downgrade("A", LEVELS, 1) == "B"
    assert scoring.downgrade("B", LEVELS, 1) == "C"
    assert scoring.downgrade("C", LEVELS, 1) == "C"
    assert scoring.downgrade(None, LEVELS, 1) is None
    assert scoring.tier_rank("A", LEVELS) > scoring.tier_rank("B", LEVELS) > scoring.tier_rank(None, LEVELS)
