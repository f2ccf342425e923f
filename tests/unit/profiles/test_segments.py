"""Segments without Redis: the rules section, membership of hand-built profiles, re-check times."""

from __future__ import annotations

import json
import textwrap

from profiles.engine import Engine
from profiles.rules import DEFAULT_RULES_PATH, load_rules, load_rules_file
from profiles.segments import as_of, from_line, idempotency_key, next_check
from profiles.state import ProfileState
from tests.unit.profiles.factory import T0, D, H, S, identify, numbered, page, track

RULES = load_rules(
    textwrap.dedent("""
    options: {segment_recheck: 6h}
    aggregates:
      pricing_7d: {on: page, where: 'event.path == "/pricing"', op: count, window: 7d}
      orders: {on: "track:Order Completed", op: count}
    tags:
      keen: {on: page, where: 'event.path == "/pricing"', ttl: 2d}
    segments:
      keen_pricing:
        if: 'profile.agg.pricing_7d >= 2 && "keen" in profile.tags'
        description: twice on pricing
      buyers: {if: profile.agg.orders >= 1}
      vip: {if: 'has(profile.traits.plan) && profile.traits.plan == "vip"'}
      lapsed: {sql: "SELECT oneid FROM events GROUP BY oneid HAVING max(timestamp) < 1"}
"""),
    strict=True,
)


def state_after(events, rules=RULES, st=None, start=0):
    """The engine's copy of p1 after these events (as the store hands it to the segments)."""
    engine = Engine(rules, T0)
    st = st or ProfileState("p1")
    for offset, event in numbered(events, start):
        engine.on_event(st, 0, offset, event)
    engine.finish_profile(st)
    return engine, st


def ops(engine, st, now):
    """The ops after a batch of events (as the store asks: a staying member writes nothing)."""
    entry = engine.segments.entry(st, now, reason="event", message_id="m-last", stays=False)
    return {op[0]: op for op in entry["ops"]} if entry else {}


def member(st, *names):
    """The copy as Redis holds it after entering ``names`` (the m:<name> fields a read returns)."""
    for name in names:
        st.segments[name] = T0
    return st


# -- the rules file ------------------------------------------------------------------------------


def test_segments_compile_by_kind():
    assert {n: s.kind for n, s in RULES.segments.items()} == {
        "keen_pricing": "stream", "buyers": "stream", "vip": "stream", "lapsed": "sql"}
    assert [s.name for s in RULES.stream_segments] == ["keen_pricing", "buyers", "vip"]
    assert RULES.segments["keen_pricing"].description == "twice on pricing"
    assert RULES.options.segment_recheck_ms == 6 * H


def test_bad_segments_are_rejected_by_name_and_the_others_load():
    rules = load_rules(textwrap.dedent("""
        aggregates:
          n: {on: page, op: count}
        segments:
          both: {if: profile.agg.n > 1, sql: SELECT oneid FROM events}
          neither: {description: nothing}
          reads_event: {if: 'event.path == "/x"'}
          unknown_aggregate: {if: profile.agg.missing > 1}
          not_a_query: {sql: "DELETE FROM events"}
          typo: {iff: profile.agg.n > 1}
          Bad-Name: {if: profile.agg.n > 1}
          fine: {if: profile.agg.n > 1}
    """))
    assert {i.rule for i in rules.issues} == {
        "segments.both", "segments.neither", "segments.reads_event", "segments.unknown_aggregate",
        "segments.not_a_query", "segments.typo", "segments.Bad-Name"}
    assert list(rules.segments) == ["fine"]


def test_the_default_rules_ship_segments():
    defaults = load_rules_file(DEFAULT_RULES_PATH, strict=True)
    assert {"hot_leads", "big_spenders"} <= {s.name for s in defaults.stream_segments}


# -- membership ------------------------------------------------------------------------------------


def test_a_profile_enters_when_its_condition_becomes_true_and_only_then():
    engine, st = state_after([page("/pricing", T0)])
    assert ops(engine, st, T0 + S) == {}  # once on pricing: in nothing yet
    engine, st = state_after([page("/pricing", T0 + H)], st=st, start=1)
    op = ops(engine, st, T0 + H)["keen_pricing"]
    name, was, want, _, reason, when, message_id, facts = op
    assert (name, was, want, reason, when) == ("keen_pricing", 0, 1, "event", T0 + H)
    assert message_id == "m-last"
    assert json.loads(facts)["agg"]["pricing_7d"] == 2 and "keen" in json.loads(facts)["tags"]


def test_a_member_that_still_qualifies_only_moves_its_recheck_and_one_that_stops_exits():
    _, st = state_after([page("/pricing", T0), page("/pricing", T0 + H)])
    st = member(st, "keen_pricing")
    engine = Engine(RULES, T0)
    assert ops(engine, st, T0 + 2 * H) == {}  # after events: no change, nothing to write
    entry = engine.segments.entry(st, T0 + 2 * H, reason="time")  # a re-check moves the next one
    stays = {op[0]: op for op in entry["ops"]}["keen_pricing"]
    assert stays[1:4] == [1, 1, T0 + 2 * H + 6 * H] and stays[7] == ""  # no change: no facts
    gone = ops(engine, st, T0 + 3 * D)["keen_pricing"]  # the tag expired two days after
    assert gone[1:3] == [1, 0] and json.loads(gone[7])["tags"] == []


def test_traits_and_lifetime_aggregates_decide_too():
    engine, st = state_after([identify({"plan": "vip"}, T0), track("Order Completed", T0 + S)])
    assert set(ops(engine, st, T0 + S)) == {"vip", "buyers"}


def test_a_profile_that_no_longer_exists_leaves_what_it_was_in():
    held = member(ProfileState("p1"), "buyers")  # in the index, but the profile is gone
    entry = Engine(RULES, T0).segments.entry(held, T0, reason="time")
    assert entry["ops"] == [["buyers", 1, 0, 0, "time", T0, "", '{}']]


def test_evaluation_is_as_of_now_or_the_last_event_if_later():
    _, st = state_after([page("/pricing", T0 + H)])
    assert as_of(st, T0) == T0 + H and as_of(st, T0 + D) == T0 + D


def test_nothing_to_write_without_stream_segments():
    rules = load_rules("segments: {x: {sql: SELECT oneid FROM events}}", strict=True)
    engine, st = state_after([page("/pricing", T0)], rules)
    assert engine.segments.entry(st, T0, reason="event") is None


# -- re-check times --------------------------------------------------------------------------------


def test_recheck_is_the_next_tag_expiry_or_window_slide_within_the_recheck_interval():
    _, st = state_after([page("/pricing", T0), page("/pricing", T0 + H)])
    keen = RULES.segments["keen_pricing"]
    assert next_check(RULES, keen, st, T0 + H) == T0 + H + 6 * H  # nothing expires sooner
    late = T0 + 2 * D - 3 * H  # the tag (2 days after the last view) expires within 6 hours
    assert next_check(RULES, keen, st, late) == T0 + H + 2 * D
    bucket = RULES.aggregates["pricing_7d"].bucket_ms
    slide = (T0 // bucket + 7 * D // bucket) * bucket  # the first view's hour leaves the 7-day window
    assert next_check(RULES, keen, st, slide - H) == slide


def test_a_condition_on_traits_alone_is_rechecked_only_at_the_interval():
    _, st = state_after([identify({"plan": "vip"}, T0)])
    assert next_check(RULES, RULES.segments["vip"], st, T0) == T0 + 6 * H


# -- records -------------------------------------------------------------------------------------


def test_an_outbox_line_reads_as_the_avro_record():
    line = json.dumps(["segment_exited", "buyers", "p2", 7, "merged", T0, T0 + 5, "", "p1", "{}", "p"])
    assert from_line(line) == {
        "type": "segment_exited", "segment": "buyers", "oneid": "p2", "idempotency_key": "buyers:p2:7",
        "version": 7, "reason": "merged", "as_of": T0, "changed_at": T0 + 5, "message_id": None,
        "survivor": "p1", "facts": "{}"}
    assert idempotency_key("buyers", "p2", 7) == "buyers:p2:7"


def test_one_aggregate_read_without_parsing_equals_the_parsed_buckets():
    """Segments read the tier's aggregate of every profile a batch changes: without a full parse,
    and with this batch's adds."""
    spec = RULES.aggregates["pricing_7d"]
    raw = {f"a:{spec.sid}:{T0 // H}".encode(): b"2", f"a:{spec.sid}:{T0 // H + 1}".encode(): b"1",
           b"g:keen": str(T0 + 2 * D).encode(), b"ls": str(T0).encode()}
    kinds = {a.sid: (name, a.kind) for name, a in RULES.aggregates.items()}
    st = ProfileState.parse("p1", raw, {}, kinds)
    st.add("pricing_7d", spec.sid, "n", T0 // H + 1, 4)  # this batch, not parsed yet
    partial = st.buckets_of("pricing_7d", spec.sid, "n")
    assert partial == {T0 // H: 2, T0 // H + 1: 5} and st.active_tags(T0) == ["keen"]
    assert st.buckets["pricing_7d"] == partial  # the full parse agrees
