"""Which way time alone moves a segment's condition, and so who needs a segment timer."""

from __future__ import annotations

import textwrap

import pytest

from profiles.rules import load_rules
from profiles.rules import monotone as m

RULES = load_rules(textwrap.dedent("""
    options: {segment_recheck: 6h}
    aggregates:
      views_7d: {on: page, op: count, window: 7d}
      pages_7d: {on: page, op: unique, value: event.path, window: 7d}
      top_7d: {on: "track:Order Completed", op: max, value: double(event.properties.revenue), window: 7d}
      low_7d: {on: "track:Order Completed", op: min, value: double(event.properties.revenue), window: 7d}
      revenue_7d: {on: "track:Order Completed", op: sum, value: double(event.properties.revenue), window: 7d}
      orders: {on: "track:Order Completed", op: count}
    tags:
      keen: {on: page, ttl: 2d}
    score:
      half_life: 30d
      behaviour:
        view: {on: page, points: 1}
"""), strict=True)


def moves(text: str, rules=RULES) -> str:
    tree = m.parse(text)
    assert tree is not None, text
    return m.direction(tree, rules._moves)


@pytest.mark.parametrize(("text", "expected"), [
    # only falling with time: a non-member cannot enter by time alone
    ('profile.score >= 60 && "high_intent" in profile.tags', m.DOWN),
    ("profile.score > 10", m.DOWN),
    ("profile.agg.views_7d >= 3", m.DOWN),
    ("profile.agg.pages_7d > 1 || profile.agg.top_7d >= 100.0", m.DOWN),
    ('"keen" in profile.tags && profile.traits.plan == "pro"', m.DOWN),
    ("size(profile.tags) >= 2", m.DOWN),
    ("int(profile.score) >= 5", m.DOWN),
    ("profile.score * 2 > 10", m.DOWN),
    ("10 < profile.score", m.DOWN),
    ("profile.score - profile.agg.orders > 3", m.DOWN),
    ("now - profile.last_seen < 86400000", m.DOWN),
    ("!(profile.score < 50)", m.DOWN),
    ("-profile.score < -5", m.DOWN),
    # rising: time alone can make them true
    ("now - profile.last_seen > 90 * 86400000", m.UP),
    ("profile.last_seen != null && now - profile.last_seen > 40000", m.UP),
    ("profile.score < 10", m.UP),
    ('!("keen" in profile.tags)', m.UP),
    ("profile.agg.views_7d == 0 || profile.agg.views_7d < 1", m.ANY),
    ("profile.agg.views_7d < 1", m.UP),
    ("profile.agg.low_7d >= 10.0", m.UP),
    ("now > profile.first_seen + 86400000", m.UP),
    ("profile.score * -1 > -5", m.UP),
    # never moved by time
    ('has(profile.traits.plan) && profile.traits.plan == "vip"', m.CONST),
    ('profile.traits["plan"] in ["vip", "gold"]', m.CONST),
    ("profile.agg.orders >= 1", m.CONST),
    ("profile.last_seen > 0 && 0x10 + 2u > 3.5e1", m.CONST),
    ("profile.consent.marketing == true", m.CONST),
    # unknown: either way, or not understood (kept timed, as before)
    ("profile.agg.revenue_7d >= 100.0", m.ANY),
    ('profile.tier == "A"', m.ANY),
    ("profile.score == 10", m.ANY),
    ("profile.score >= 60 || now > 5", m.ANY),
    ("profile.score >= 60 ? true : false", m.ANY),
    ("profile.tags.exists(t, t.startsWith('k'))", m.ANY),
    ("profile.score * profile.score > 4", m.ANY),
    ("profile.score % 7 == 1", m.ANY),
    ("profile.agg.views_7d * profile.agg.views_7d >= 1", m.ANY),
    ("profile.agg.missing >= 1", m.ANY),
    ("profile == null", m.ANY),
    ('profile.score == "x"', m.ANY),
    ('profile.traits.plan != "vip" && profile.score > 3', m.DOWN),
])
def test_each_shape_moves_as_time_would_move_it(text, expected):
    assert moves(text) == expected


def test_a_score_with_negative_points_can_rise_as_it_decays_to_zero():
    rules = load_rules(textwrap.dedent("""
        score:
          half_life: 30d
          behaviour:
            view: {on: page, points: 1}
            unsubscribed: {on: "track:Unsubscribed", points: -50}
    """), strict=True)
    assert moves("profile.score >= 10", rules) == m.ANY
    undecayed = load_rules("score: {half_life: 0s, behaviour: {view: {on: page, points: 1}}}\n", strict=True)
    assert moves("profile.score >= 10", undecayed) == m.CONST


@pytest.mark.parametrize("text", ["profile.score >=", "(now", "a ? b", "profile.score > 'x", "a.1", ""])
def test_text_it_does_not_understand_is_none(text):
    assert m.parse(text) is None


def test_only_segments_a_non_member_can_enter_by_time_are_listed():
    rules = load_rules(textwrap.dedent("""
        tags:
          high_intent: {on: page, ttl: 2d}
        score:
          half_life: 30d
          behaviour:
            view: {on: page, points: 1}
        segments:
          hot_leads: {if: 'profile.score >= 60 && "high_intent" in profile.tags'}
          dormant: {if: 'now - profile.last_seen > 90 * 86400000'}
          cooling: {if: 'profile.score < 5'}
          vip: {if: 'profile.traits.plan == "vip"'}
    """), strict=True)
    assert set(rules.timed_segments) == {"hot_leads", "dormant", "cooling"}
    assert rules.segments_entered_by_time == {"dormant", "cooling"}


TIERED = load_rules(textwrap.dedent("""
    aggregates:
      revenue_365d:
        {on: "track:Order Completed", op: sum, value: double(event.properties.revenue), window: 365d}
    tier:
      aggregate: revenue_365d
      levels: {A: 100000, B: 20000, C: 0}
      inactive_after: 90d
      downgrade_steps: 1
"""), strict=True)


@pytest.mark.parametrize(("text", "if_sums_fall"), [
    ('profile.tier == "A"', m.DOWN),  # the top level: only ever left
    ('"A" == profile.tier', m.DOWN),
    ('profile.tier != "A"', m.UP),
    ('profile.tier == "C"', m.UP),  # the lowest: only ever reached
    ('profile.tier != "C"', m.DOWN),
    ('profile.tier == "B"', m.ANY),  # reached from A, left for C
    ("profile.agg.revenue_365d >= 100.0", m.DOWN),
])
def test_the_tier_falls_when_its_windowed_sum_does(text, if_sums_fall):
    tree = m.parse(text)
    assert tree is not None
    assert m.direction(tree, lambda p: TIERED._moves(p, sums_fall=True)) == if_sums_fall
    assert m.direction(tree, TIERED._moves) == m.ANY  # a negative order leaving the window raises it


def test_the_default_rules_time_a_non_member_only_for_big_spenders_and_only_after_a_negative_order():
    from profiles.rules import DEFAULT_RULES_PATH, load_rules_file

    rules = load_rules_file(DEFAULT_RULES_PATH, strict=True)
    assert set(rules.timed_segments) == {"hot_leads", "big_spenders"}
    assert rules.segments_entered_by_time == {"big_spenders"}
    assert rules.segments_entered_by_time_if_sums_fall == frozenset()
    assert [a.name for a in rules.timed_sums] == ["revenue_365d"]
