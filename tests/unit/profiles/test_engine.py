import json
import textwrap

import pytest

from profiles.engine import Engine
from profiles.rules import DEFAULT_RULES_PATH, load_rules, load_rules_file
from profiles.state import ProfileState
from tests.unit.profiles.factory import T0, D, H, S, identify, numbered, page, track

RULES = load_rules(
    textwrap.dedent("""
    options: {allowed_lateness: 1h}
    aggregates:
      orders: {on: "track:Order Completed", op: count, window: 90d}
      revenue: {on: "track:Order Completed", op: sum, value: double(event.properties.revenue), window: 365d}
    triggers:
      promo: {on: "track:Order Completed", marketing: true}
      receipt: {on: "track:Order Completed", marketing: false}
      cooled: {on: "track:Ping", marketing: false, cooldown: 1h}
      needs_revenue: {on: "track:Ping", marketing: false, if: event.properties.revenue > 1}
"""),
    strict=True,
)
DEFAULTS = load_rules_file(DEFAULT_RULES_PATH, strict=True)


def run(rules, events, states=None, *, partition=0, start=0):
    engine = Engine(rules, T0)
    states = {} if states is None else states
    for offset, ev in numbered(events, start):
        st = states.setdefault(ev["oneid"], ProfileState(ev["oneid"]))
        engine.on_event(st, partition, offset, ev)
    for st in states.values():
        engine.finish_profile(st)
    return engine, states


def fired(engine):
    return [t["rule"] for t in engine.pending]


def order(ts, revenue=100.0, **kw):
    return track("Order Completed", ts, properties={"revenue": revenue, "order_id": "o1"}, **kw)


@pytest.mark.parametrize(
    ("consent", "allowed"),
    [
        (None, False),
        (False, False),
        ("false", False),
        (True, True),
        ("true", True),
        ("yes", True),
        (1, True),
    ],
)
def test_marketing_triggers_need_consent(consent, allowed):
    events = [] if consent is None else [identify({"marketing_consent": consent}, T0)]
    engine, _ = run(RULES, [*events, order(T0 + S)])
    assert ("promo" in fired(engine)) is allowed
    assert "receipt" in fired(engine)  # not marketing: fires anyway
    assert engine.result.suppressed_marketing == (0 if allowed else 1)


def test_consent_trait_name_is_configurable():
    rules = load_rules(
        textwrap.dedent("""
        options: {consent_trait: optin}
        triggers:
          promo: {on: "track:Order Completed"}
    """),
        strict=True,
    )
    engine, _ = run(rules, [identify({"optin": True, "marketing_consent": False}, T0), order(T0 + S)])
    assert fired(engine) == ["promo"]


def test_cooldown_is_per_rule_in_event_time():
    engine, _ = run(RULES, [track("Ping", T0), track("Ping", T0 + 30 * 60 * S), track("Ping", T0 + 2 * H)])
    assert fired(engine) == ["cooled", "cooled"]
    assert engine.result.suppressed_cooldown == 1


def test_a_retried_message_never_fires_twice():
    first = order(T0, message_id="same-id")
    retry = order(T0 + S, message_id="same-id")  # an SDK retry that got a new offset
    engine, _ = run(RULES, [identify({"marketing_consent": True}, T0 - S), first, retry])
    assert fired(engine).count("promo") == 1 and fired(engine).count("receipt") == 1
    assert engine.result.duplicates == 2
    assert len({t["idempotency_key"] for t in engine.pending}) == 2


def test_replayed_offsets_are_skipped():
    events = [order(T0), order(T0 + S)]
    _, states = run(RULES, events)
    engine, _ = run(RULES, events, states)
    assert engine.result.skipped_replayed == 2 and engine.pending == []
    assert states["p1"].buckets["orders"] == {(T0 // D): 2}


def test_late_events_within_the_lateness_apply_older_ones_are_counted():
    engine, states = run(RULES, [order(T0 + 2 * H), order(T0 + H + 1), order(T0)])
    assert engine.result.skipped_late == 1
    assert sum(states["p1"].buckets["orders"].values()) == 2
    assert states["p1"].first_seen == T0 + H + 1


def test_latest_event_time_wins_per_trait():
    _, states = run(
        RULES,
        [identify({"plan": "pro", "city": "杭州"}, T0 + H), identify({"plan": "free"}, T0 + 30 * 60 * S)],
    )
    st = states["p1"]
    assert st.trait("plan") == "pro" and st.trait("city") == "杭州"


def test_failing_conditions_count_as_false_and_are_counted():
    engine, _ = run(RULES, [track("Ping", T0), track("Ping", T0 + 2 * H, properties={"revenue": 5})])
    assert fired(engine) == ["cooled", "cooled", "needs_revenue"]
    assert engine.result.rule_errors == 1 and RULES.eval_errors["triggers.needs_revenue"] >= 1


def test_unrelated_events_evaluate_nothing():
    engine, _ = run(RULES, [page("/pricing", T0), identify({"x": 1}, T0 + S), track("Other", T0 + 2 * S)])
    assert engine.pending == [] and engine.result.rule_errors == 0


# -- the default rules -------------------------------------------------------------------------


def profile_of(engine, st, as_of):
    return engine.snapshot(st, as_of)


def test_intent_tags():
    events = [page("/pricing", T0 + i * H) for i in range(3)] + [page("/features/journeys", T0 + 4 * H)]
    engine, states = run(DEFAULTS, events)
    snap = profile_of(engine, states["p1"], T0 + 4 * H)
    assert snap["aggregates"]["pricing_views_7d"] == 3
    assert {"high_intent", "interested_in_journeys"} <= set(snap["tags"])
    assert "price_sensitive" not in snap["tags"]
    # tags expire by event time
    assert "high_intent" not in profile_of(engine, states["p1"], T0 + 20 * D)["tags"]


def test_feature_tags_ignore_odd_paths():
    _engine, states = run(DEFAULTS, [page("/features/<script>", T0), page("/features/", T0 + S)])
    assert not [t for t in states["p1"].tags if t.startswith("interested_in_")]


def test_lead_score_adds_attributes_and_decays_behaviour():
    traits = {"employees": 800, "industry": "software", "title": "CTO"}
    engine, states = run(DEFAULTS, [identify(traits, T0), track("Demo Requested", T0 + S)])
    st = states["p1"]
    now = profile_of(engine, st, T0 + S)["score"]
    assert now == pytest.approx(20 + 10 + 10 + 30)
    later = profile_of(engine, st, T0 + S + 30 * D)["score"]
    assert later == pytest.approx(40 + 15)  # behaviour halves after one half-life; attributes stay


def test_mql_fires_once_when_the_score_crosses():
    events = [
        identify({"employees": 800, "industry": "software"}, T0),
        track("Demo Requested", T0 + S),
        track("Trial Started", T0 + 2 * S),
        track("Trial Started", T0 + 3 * S),
    ]
    engine, _ = run(DEFAULTS, events)
    mql = [t for t in engine.pending if t["rule"] == "mql_reached"]
    assert len(mql) == 1 and json.loads(mql[0]["values"])["score"] > 60
    assert mql[0]["message_id"] == events[2]["message_id"]


def test_tier_upgrade_fires_when_a_threshold_is_crossed():
    events = [
        identify({"marketing_consent": True}, T0),
        order(T0 + H, 15_000),  # an hour apart: tier_upgraded has a 1 m cooldown
        order(T0 + 2 * H, 10_000),
        order(T0 + 3 * H, 1_000),
        order(T0 + 4 * H, 90_000),
    ]
    engine, states = run(DEFAULTS, events)
    ups = [json.loads(t["values"]) for t in engine.pending if t["rule"] == "tier_upgraded"]
    assert [(u["from"], u["to"]) for u in ups] == [(None, "C"), ("C", "B"), ("B", "A")]
    assert states["p1"].tier == "A"


def test_orders_schedule_post_purchase_care():
    ev = order(T0)
    _, states = run(DEFAULTS, [ev, order(T0 + S, message_id=ev["message_id"])])
    dues = sorted(p["due"] for p in states["p1"].delayed.values())
    assert dues == [T0 + 7 * D, T0 + 30 * D]


def test_pricing_dwell_fires_when_the_next_page_comes_after_200s():
    events = [
        identify({"marketing_consent": True}, T0),
        page("/pricing", T0 + S),
        page("/docs", T0 + 201 * S),
    ]
    engine, states = run(DEFAULTS, events)
    dwell = [t for t in engine.pending if t["rule"] == "pricing_dwell"]
    assert len(dwell) == 1 and json.loads(dwell[0]["values"])["dwell_s"] == 200
    assert dwell[0]["message_id"] == events[1]["message_id"] and states["p1"].views == {}


def test_sweep_fires_an_open_view_and_drops_stale_timers():
    events = [identify({"marketing_consent": True}, T0), page("/pricing", T0 + S)]
    _engine, states = run(DEFAULTS, events)
    st = states["p1"]
    ((sid, view),) = st.views.items()
    sweep = Engine(DEFAULTS, T0 + 200 * S)
    sweep.on_due(st, "v", sid, view.due_ms(), T0 + 200 * S)
    assert [t["rule"] for t in sweep.pending] == ["pricing_dwell"]
    assert st.views == {}
    stale = Engine(DEFAULTS, T0 + 10 * D)
    st2 = ProfileState("p2")
    st2.exists = True
    st2.delayed["t1"] = {"r": "post_purchase_7d", "m": "m", "t": T0, "due": T0 + 7 * D, "v": {}}
    stale.on_due(st2, "d", "t1", T0 + 7 * D, T0 + 10 * D)
    assert stale.pending == [] and stale.result.stale_timers == 1


def test_inactivity_downgrades_the_tier_once():
    events = [identify({"marketing_consent": True}, T0), order(T0 + S, 150_000)]
    _engine, states = run(DEFAULTS, events)
    st = states["p1"]
    assert st.tier == "A"
    due = st.last_interaction + 90 * D
    sweep = Engine(DEFAULTS, due + S)
    sweep.on_due(st, "i", None, due, due + S)
    down = [json.loads(t["values"]) for t in sweep.pending if t["rule"] == "tier_downgraded"]
    assert down == [{"from": "A", "to": "B", "inactive_days": 90}]
    assert st.tier == "B"
    assert profile_of(sweep, st, due + S)["tier"] == "B"
    assert profile_of(sweep, st, st.last_interaction + D)["tier"] == "A"


def test_ops_are_guarded_per_event_offset():
    _, states = run(RULES, [order(T0), order(T0 + S)], start=41)
    payload = states["p1"].payload()
    assert [g[0] for g in payload["groups"]] == [41, 42]
    assert "a:" + RULES.aggregates["orders"].sid + f":{T0 // D}" in payload["fields"]
