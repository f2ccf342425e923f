"""Entering (and leaving) a stream segment by time alone: which segments time can change, the
segment timer an evaluation asks for, and how exactly it finds the moment."""

from __future__ import annotations

import math
import textwrap

from profiles.engine import Engine
from profiles.rules import DEFAULT_RULES_PATH, load_rules, load_rules_file
from profiles.segments.timing import RESOLUTION_MS, next_change
from profiles.state import ProfileState
from tests.unit.profiles.factory import T0, D, H, S, identify, numbered, page, track

RULES = load_rules(
    textwrap.dedent("""
    options: {segment_recheck: 6h}
    aggregates:
      views_7d: {on: page, op: count, window: 7d}
      orders: {on: "track:Order Completed", op: count}
    tags:
      keen: {on: page, where: 'event.path == "/pricing"', ttl: 2d}
    score:
      half_life: 1d
      behaviour:
        view: {on: page, points: 80}
    segments:
      dormant: {if: 'profile.last_seen != null && now - profile.last_seen > 90 * 86400000'}
      cooling: {if: 'profile.score > 0.0 && profile.score < 10.0'}
      quiet_week: {if: 'profile.agg.views_7d == 0'}
      not_keen: {if: '!("keen" in profile.tags)'}
      buyers: {if: profile.agg.orders >= 1}
      vip: {if: 'has(profile.traits.plan) && profile.traits.plan == "vip"'}
"""),
    strict=True,
)


def state_after(events, rules=RULES):
    engine = Engine(rules, T0)
    st = ProfileState("p1")
    for offset, event in numbered(events):
        engine.on_event(st, 0, offset, event)
    engine.finish_profile(st)
    return engine, st


def change_at(rules, name, st, as_of, answer):
    engine = Engine(rules, as_of)
    return next_change(rules, engine.facts, rules.segments[name], st, as_of, answer)


# -- which segments time can change -----------------------------------------------------------------


def test_now_is_a_variable_of_segment_conditions_only():
    rules = load_rules(textwrap.dedent("""
        tags:
          stale: {on: page, if: 'now - profile.last_seen > 1000'}
        segments:
          fine: {if: 'now > 0'}
    """))
    assert [i.rule for i in rules.issues] == ["tags.stale"] and "now" in rules.issues[0].error
    assert rules.segments["fine"].when.reads_now


def test_segments_time_can_change_are_told_apart_from_those_it_cannot():
    assert RULES.timed_segments == {"dormant": True, "cooling": True, "quiet_week": False, "not_keen": False}
    no_decay = load_rules("score: {half_life: 0, behaviour: {v: {on: page, points: 1}}}\n"
                          "segments: {s: {if: profile.score > 1.0}}", strict=True)
    assert no_decay.timed_segments == {}  # a score without a half-life moves only with events


def test_the_default_rules_segments_are_timed():
    defaults = load_rules_file(DEFAULT_RULES_PATH, strict=True)
    assert set(defaults.timed_segments) == {s.name for s in defaults.stream_segments}


# -- the moment ------------------------------------------------------------------------------------


def test_a_quiet_person_is_due_the_second_ninety_days_after_their_last_event():
    _, st = state_after([page("/", T0)])
    crossing = T0 + 90 * D + 1  # `> 90 days`: the first millisecond after
    far = change_at(RULES, "dormant", st, T0, False)
    assert far == T0 + 6 * H  # nothing known sooner: the re-check interval
    near = change_at(RULES, "dormant", st, crossing - 2 * H, False)
    assert crossing <= near < crossing + RESOLUTION_MS  # found to the second, never early
    assert change_at(RULES, "dormant", st, crossing, True) == crossing + 6 * H  # dormant for good


def test_a_decaying_score_is_due_when_it_crosses_the_threshold():
    _, st = state_after([page("/", T0)])  # 80 points, half-life one day: under 10 after three days
    found = change_at(RULES, "cooling", st, T0 + 3 * D - H, False)
    assert math.isclose(found, T0 + 3 * D, abs_tol=10 * S)  # the score is rounded to 3 decimals
    facts = Engine(RULES, T0).facts
    assert facts.score(st, found) < 10 <= facts.score(st, found - RESOLUTION_MS)  # to the second


def test_known_dates_are_exact_tag_expiry_and_window_slide():
    _, st = state_after([page("/pricing", T0)])
    assert change_at(RULES, "not_keen", st, T0 + 2 * D - H, False) == T0 + 2 * D
    bucket = RULES.aggregates["views_7d"].bucket_ms
    slide = (T0 // bucket + 7 * D // bucket) * bucket
    assert change_at(RULES, "quiet_week", st, slide - H, False) == slide


# -- the segment timer an evaluation asks for --------------------------------------------------------


def test_every_profile_of_timed_rules_gets_the_earliest_change_member_or_not():
    engine, st = state_after([page("/pricing", T0)])
    entry = engine.segments.entry(st, T0 + 2 * D - 4 * H, reason="time")
    assert entry["ops"] == [] and entry["due"] == T0 + 2 * D  # not_keen: a non-member, when the tag expires
    after_events = engine.segments.entry(st, T0 + 2 * D - 4 * H, reason="event", stays=False)
    assert after_events["due"] == T0 + 2 * D and after_events["lt"] == 1  # after events: only ever earlier


def test_rules_without_timed_segments_ask_for_no_timer():
    rules = load_rules("aggregates: {orders: {on: 'track:Order Completed', op: count}}\n"
                       "segments: {buyers: {if: profile.agg.orders >= 1}}", strict=True)
    engine, st = state_after([track("Order Completed", T0), identify({"plan": "vip"}, T0)], rules)
    assert engine.segments.entry(st, T0, reason="event", stays=False)["ops"][0][0] == "buyers"
    assert "due" not in engine.segments.entry(st, T0, reason="time")
    engine, st = state_after([page("/", T0)], rules)
    assert engine.segments.entry(st, T0, reason="event", stays=False) is None


def test_a_profile_gone_drops_its_timer():
    assert Engine(RULES, T0).segments.entry(ProfileState("gone"), T0, reason="time")["due"] == -1


def test_following_the_timer_a_quiet_person_enters_dormant_at_the_crossing_and_never_before():
    rules = load_rules(textwrap.dedent("""
        options: {segment_recheck: 1d}
        segments:
          dormant: {if: 'profile.last_seen != null && now - profile.last_seen > 90 * 86400000'}
    """), strict=True)
    engine, st = state_after([page("/", T0)], rules)
    at, evaluations = T0, 0
    while True:
        entry = engine.segments.entry(st, at, reason="time")
        evaluations += 1
        if entry["ops"]:
            break
        assert T0 < entry["due"] <= at + D
        at = entry["due"]
    assert entry["ops"][0][:3] == ["dormant", 0, 1]
    assert T0 + 90 * D < at < T0 + 90 * D + RESOLUTION_MS + 1
    assert evaluations == 92  # once a day for 91 days (the re-check interval), then at the crossing


HOT = load_rules(textwrap.dedent("""
    options: {segment_recheck: 6h}
    tags:
      high_intent: {on: page, where: 'event.path == "/pricing"', ttl: 2d}
    score:
      half_life: 1d
      behaviour:
        view: {on: page, points: 40}
    segments:
      hot_leads: {if: 'profile.score >= 60 && "high_intent" in profile.tags'}
"""), strict=True)


def test_a_non_member_of_a_segment_time_only_empties_keeps_no_timer_and_a_member_does():
    engine, st = state_after([page("/", T0)], HOT)  # score 40, no tag: out, and time cannot bring it in
    assert engine.segments.entry(st, T0, reason="time") == {"mg": st.merge_gen, "ops": [], "due": -1}
    assert engine.segments.entry(st, T0, reason="event", stays=False)["due"] == -1
    engine, st = state_after([page("/pricing", T0), page("/pricing", T0 + S)], HOT)  # 80 and the tag: in
    entry = engine.segments.entry(st, T0 + S, reason="event", stays=False)
    assert entry["ops"][0][:3] == ["hot_leads", 0, 1]
    # a member is timed: its re-check (6h) comes before the score falls below 60 (about 10 h)
    assert entry["due"] == T0 + S + 6 * H == entry["ops"][0][3]
    # the same profile under rules where time could bring it in again keeps its timer once out
    engine, st = state_after([page("/", T0)])
    assert engine.segments.entry(st, T0, reason="time")["due"] > T0


def test_under_the_default_rules_a_non_member_is_timed_only_while_a_negative_order_is_in_its_window():
    rules = load_rules_file(DEFAULT_RULES_PATH, strict=True)
    order = track("Order Completed", T0, properties={"revenue": 500})
    engine, st = state_after([page("/", T0), order], rules)
    assert engine.segments.entry(st, T0, reason="time")["due"] == -1  # time only lowers its tier
    refund = [page("/", T0), track("Order Completed", T0, properties={"revenue": 500}),
              track("Order Completed", T0 + 2 * D, properties={"revenue": -300})]  # another bucket
    engine, st = state_after(refund, rules)
    assert engine.segments.entry(st, T0 + 2 * D, reason="time")["due"] > T0 + 2 * D  # its revenue may rise
