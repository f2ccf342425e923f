"""What a public write key can send must never stop, crash or poison the profile stage.

Each test feeds the engine one kind of hostile value and checks both that nothing raises and
what the value now amounts to (absent, not a number, skipped and counted). Every op payload is
also serialised the way the store sends it (orjson), since a value that survives the engine but
not the serialiser stalls the partition just the same.
"""

from __future__ import annotations

import json
import logging
import math
import textwrap

import orjson
import pytest

from profiles import jsonsafe
from profiles.engine import Engine
from profiles.events import EventView, event_time
from profiles.rules import DEFAULT_RULES_PATH, load_rules, load_rules_file
from profiles.state import ProfileState
from tests.unit.profiles.factory import T0, D, H, M, S, event, identify, numbered, page, track

DEFAULTS = load_rules_file(DEFAULT_RULES_PATH, strict=True)
RULES = load_rules(
    textwrap.dedent("""
    aggregates:
      revenue: {on: "track:Order Completed", op: sum, value: double(event.properties.revenue)}
      biggest: {on: "track:Order Completed", op: max, value: event.properties.revenue}
      last_note: {on: "track:Order Completed", op: last, value: event.properties.note}
      kinds: {on: "track:Order Completed", op: unique, value: event.properties.note}
    triggers:
      receipt:
        on: "track:Order Completed"
        marketing: false
        values: {revenue: double(event.properties.revenue), note: event.properties.note}
      pinged: {on: "track:Ping", marketing: false}
      big_spender: {on: "track:Ping", marketing: false, if: int(event.properties.amount) > 10}
    """),
    strict=True,
)


def run(rules, events, *, states=None, start=0, **engine_kw):
    engine = Engine(rules, T0, **engine_kw)
    states = {} if states is None else states
    for offset, ev in numbered(events, start):
        st = states.setdefault("p1", ProfileState("p1"))
        engine.on_event(st, 0, offset, ev)
    for st in states.values():
        engine.finish_profile(st)
        payload = st.payload()
        if payload is not None:
            orjson.dumps(payload)  # what the store sends to Redis: raises on a lone surrogate
    return engine, states


def raw_track(name: str, ts: int, properties_text: str, **kw) -> dict:
    ev = track(name, ts, **kw)
    ev["properties"] = properties_text
    return ev


def strict_json(text: str):
    """json.loads that refuses NaN/Infinity (what every other JSON parser does)."""

    def refuse(name):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


# -- URLs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("http://[", ""),  # urlsplit raises ValueError: this stalled the profile stage
        ("http://[::1", ""),
        ("http://]x[/a", ""),
        ("https://exa mple.com:99999999/x", "/x"),  # odd but parsable
        ("\ud800", "\ufffd"),
        ("/pricing" * 10_000, "/pricing" * 10_000),
    ],
)
def test_an_unparsable_url_has_an_empty_path(url, path):
    ev = event("page", T0, properties={"url": url})
    engine, states = run(DEFAULTS, [ev])
    assert EventView(ev).path == path
    assert engine.result.skipped_invalid == 0 and states["p1"].last_seen == T0  # the event still counts


# -- numbers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "revenue_json",
    ["NaN", "Infinity", "-Infinity", "1e999", '"NaN"', '"Infinity"', '"1e999"', "1e300", "1" + "0" * 5000],
)
def test_non_finite_or_absurd_revenue_leaves_the_aggregates_unchanged(revenue_json):
    good = raw_track("Order Completed", T0, '{"revenue": 100, "note": "ok"}')
    bad = raw_track("Order Completed", T0 + S, f'{{"revenue": {revenue_json}, "note": "x"}}')
    engine, states = run(RULES, [good, bad])
    snap = engine.snapshot(states["p1"], T0 + S)
    assert snap["aggregates"]["revenue"] == 100.0 and snap["aggregates"]["biggest"] == 100
    for trigger in engine.pending:
        values = strict_json(trigger["values"])  # valid JSON: NaN/inf became null
        assert values["revenue"] is None or math.isfinite(values["revenue"])


def test_a_nan_revenue_does_not_raise_the_tier():
    events = [identify({"marketing_consent": True}, T0)] + [
        raw_track("Order Completed", T0 + i * H, '{"revenue": ' + text + "}")
        for i, text in enumerate(["NaN", "Infinity", '"1e999"', "25000"], start=1)
    ]
    engine, states = run(DEFAULTS, events)
    assert states["p1"].tier == "B"
    assert engine.snapshot(states["p1"], T0 + 5 * H)["aggregates"]["revenue_365d"] == 25_000
    ups = [strict_json(t["values"]) for t in engine.pending if t["rule"] == "tier_upgraded"]
    assert ups == [{"amount": 25000.0, "from": None, "to": "B"}]


def test_python_nan_in_a_properties_dict_is_not_a_number():
    ev = track("Order Completed", T0, properties={"revenue": float("nan"), "note": float("inf")})
    engine, states = run(RULES, [ev])
    assert engine.snapshot(states["p1"], T0)["aggregates"]["revenue"] == 0
    assert strict_json(engine.pending[0]["values"]) == {"note": None, "revenue": None}


# -- text --------------------------------------------------------------------------------------


def test_lone_surrogates_are_replaced_before_state_and_triggers():
    ev = raw_track("Order Completed", T0, '{"revenue": 5, "note": "a\\ud800b"}')
    who = identify({}, T0 + S)
    who["traits"] = '{"name\\udc00": "\\ud83d", "ok": "\\ud83d\\ude00"}'
    surrogate_page = page("/pricing\ud800", T0 + 2 * S)
    engine, states = run(RULES, [ev, who, surrogate_page])
    st = states["p1"]
    assert st.trait("name\ufffd") == "\ufffd" and st.trait("ok") == "\U0001f600"  # a real pair stays
    assert strict_json(engine.pending[0]["values"])["note"] == "a\ufffdb"
    assert engine.snapshot(st, T0)["aggregates"]["last_note"] == "a\ufffdb"


def test_non_text_members_are_absent():
    ev = track("Order Completed", T0, properties={"revenue": 1})
    ev.update(type=["track"], event={"x": 1}, message_id=5, anonymous_id=10**5000, oneid=7)
    engine, states = run(RULES, [ev, dict(ev, type="track", event="\ud800", message_id="m\udfff")])
    assert engine.result.skipped_invalid == 0 and states["p1"].last_seen == T0


def test_very_long_and_deep_values_do_not_raise():
    deep = "[" * 5000 + "]" * 5000
    moderately_deep = '{"a":' * 200 + "1" + "}" * 200
    events = [
        raw_track("Order Completed", T0, '{"revenue": 1, "note": ' + deep + "}"),
        raw_track("Order Completed", T0 + S, '{"revenue": 2, "note": ' + moderately_deep + "}"),
        raw_track("Order Completed", T0 + 2 * S, '{"revenue": 3, "note": "' + "x" * 2_000_000 + '"}'),
        page("/pricing/" + "y" * 100_000, T0 + 3 * S),
    ]
    engine, states = run(RULES, events)
    assert engine.snapshot(states["p1"], T0 + 3 * S)["aggregates"]["revenue"] == 5.0  # deep: {} (absent)
    view = EventView(events[1])
    depth, node = 0, view.properties["note"]
    while isinstance(node, dict):
        depth, node = depth + 1, node["a"]
    assert depth < jsonsafe.MAX_DEPTH and node is None  # nesting cut before CEL's native stack


# -- conditions --------------------------------------------------------------------------------


def test_a_condition_failing_on_a_weird_value_is_false_and_logs_no_value(caplog):
    secret = "jane.doe@example.com"
    events = [
        track("Ping", T0, properties={"amount": secret}),
        track("Ping", T0 + S, properties={"amount": 10**30}),
        track("Ping", T0 + 2 * S, properties={"amount": "99"}),
    ]
    with caplog.at_level(logging.DEBUG, logger="profiles"):
        engine, _ = run(RULES, events)
    assert [t["rule"] for t in engine.pending].count("big_spender") == 1
    assert engine.result.rule_errors == 2
    assert secret not in caplog.text and str(10**30) not in caplog.text


# -- time --------------------------------------------------------------------------------------


@pytest.mark.parametrize("ts", [None, "1700000000000", 1.7e12, True, -1, 10**20, [T0]])
def test_an_event_without_a_valid_time_is_skipped_and_counted(ts):
    ev = track("Ping", T0)
    ev["timestamp"] = ts
    engine, states = run(RULES, [ev])
    assert engine.result.skipped_invalid == 1 and engine.pending == []
    assert not states["p1"].exists


def test_event_time_is_clamped_to_receipt_plus_skew():
    ev = track("Ping", T0 + 23 * H)
    ev["received_at"] = T0
    assert event_time(ev, 300_000) == T0 + 300_000
    assert event_time(dict(ev, received_at="bad"), 300_000) == T0 + 23 * H  # no receipt: as sent
    assert event_time(dict(ev, timestamp=T0 - H), 300_000) == T0 - H  # the past is not clamped


def test_a_future_dated_event_does_not_make_the_real_ones_late():
    future = track("Ping", T0 + 23 * H)
    future["received_at"] = T0
    real = [track("Ping", T0 + i * M) for i in range(1, 5)]
    engine, states = run(RULES, [future, *real])
    assert engine.result.skipped_late == 0
    assert [t["rule"] for t in engine.pending] == ["pinged"] * 5
    assert states["p1"].last_seen == T0 + 5 * M  # filed at receipt + 5 min, not a day ahead
    unclamped, _ = run(RULES, [future, *real], event_time_skew_ms=24 * H)
    assert unclamped.result.skipped_late == 4  # what happened before the clamp


# -- traits ------------------------------------------------------------------------------------


def test_new_traits_past_the_cap_are_dropped_and_counted_existing_ones_update():
    first = identify({f"t{i}": i for i in range(5)}, T0)
    second = identify({"t0": "new", "t4": "x", "t9": 9}, T0 + S)
    engine, states = run(RULES, [first, second], max_traits_per_profile=3)
    st = states["p1"]
    assert sorted(st.traits) == ["t0", "t1", "t2"]
    assert st.trait("t0") == "new"
    assert engine.result.traits_dropped == 2 + 2


# -- bursts --------------------------------------------------------------------------------------


def test_every_shipped_trigger_has_a_cooldown():
    assert DEFAULTS.triggers
    for rule in DEFAULTS.triggers.values():
        assert rule.cooldown_ms > 0, rule.name


def test_a_burst_of_demo_requests_fires_once():
    burst = [track("Demo Requested", T0 + i * 10) for i in range(2500)]
    engine, _ = run(DEFAULTS, burst)
    assert [t["rule"] for t in engine.pending].count("demo_requested") == 1
    assert engine.result.suppressed_cooldown >= 2499


def test_a_burst_of_orders_schedules_one_post_purchase_timer_per_rule():
    burst = [track("Order Completed", T0 + i * S, properties={"revenue": 1}) for i in range(200)]
    _, states = run(DEFAULTS, burst)
    assert sorted(p["r"] for p in states["p1"].delayed.values()) == ["post_purchase_30d", "post_purchase_7d"]
    later = track("Order Completed", T0 + 2 * D, properties={"revenue": 1})
    _, states = run(DEFAULTS, [later], states=states, start=200)
    assert len(states["p1"].delayed) == 4  # a day later is past the 1 d cooldown


def test_json_writer_never_emits_nan_or_surrogates():
    text = jsonsafe.dumps({"a": float("nan"), "b": [float("-inf"), "\ud800"], 1: b"x", "c": {2, 3}})
    assert strict_json(text) == {"a": None, "b": [None, "\ufffd"], "1": "b'x'", "c": "{2, 3}"}
    text.encode("utf-8")
