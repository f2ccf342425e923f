"""Property test: the profile engine never raises, whatever events a write key makes it see.

Events carry arbitrary JSON text (or no JSON at all) in properties/traits/context, arbitrary
types in every member, odd URLs and timestamps. After each batch, everything the store would
send to Redis must serialise with orjson (a lone surrogate or a NaN that survives the engine
stalls the partition just the same), trigger values must be strict JSON, and snapshots and the
timer sweep must work on the resulting profiles. Each ``@example`` is a case once found.
"""

from __future__ import annotations

import json
import math
import textwrap
from typing import Any

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from profiles.engine import Engine
from profiles.rules import DEFAULT_RULES_PATH, load_rules, load_rules_file
from profiles.state import ProfileState
from tests.unit.profiles.factory import T0, H, event

DEFAULTS = load_rules_file(DEFAULT_RULES_PATH, strict=True)
READS_EVERYTHING = load_rules(
    textwrap.dedent("""
    aggregates:
      revenue: {on: "*", op: sum, value: double(event.properties.revenue)}
      biggest: {on: "*", op: max, value: event.properties.revenue}
      smallest: {on: "*", op: min, value: event.properties.total}
      last_note: {on: "*", op: last, value: event.properties.note}
      first_ctx: {on: "*", op: first, value: event.context}
      kinds: {on: "*", op: unique, value: event.properties.note}
      names: {on: "*", op: unique, value: event.name}
    tags:
      by_name: {on: "*", name: 'string(event.properties.note)'}
      by_trait: {on: "*", if: 'has(profile.traits.plan) && string(profile.traits.plan) == "pro"'}
    score:
      behaviour:
        any: {on: "*", points: 1}
      attributes:
        sized: {if: 'has(profile.traits.employees) && int(profile.traits.employees) > 10', points: 5}
    triggers:
      echo:
        on: "*"
        marketing: false
        values:
          props: event.properties
          traits: event.traits
          ctx: event.context
          ids: event.identifiers
          seg: event.segments
          ts: event.timestamp
          amount: double(event.properties.revenue) * 2.0
      later: {kind: delayed, on: "*", delay: 1h, marketing: false, values: {p: event.properties}}
      dwell: {kind: dwell, above: 10s, marketing: false}
      crossed: {kind: score_crossed, above: 2, marketing: false}
    """),
    strict=True,
)

awkward_text = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec=None, categories=("Cs", "Lu", "Ll", "Zs", "Cc", "Cf")), max_size=10),
    st.sampled_from(["\ud800", "a\udfffb", "http://[", "http://[::1/pricing", "/pricing", "/features/sso",
                     "/features/\ud800", "Order Completed", "Demo Requested", "Page Left", "Heartbeat",
                     "NaN", "Infinity", "1e999", "-0", "", "x" * 5000]),
)
huge_ints = st.one_of(
    st.integers(),
    st.builds(lambda sign, k: sign * 10**k, st.sampled_from([1, -1]), st.integers(15, 6000)),
)
leaves = st.one_of(st.none(), st.booleans(), huge_ints, st.floats(), awkward_text)
KEYS = ["revenue", "total", "note", "url", "path", "order_id", "sessionId", "session_id", "page", "plan",
        "employees", "marketing_consent", "amount"]
keys = st.one_of(st.sampled_from(KEYS), awkward_text)
json_values = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=15,
)


def deep_text(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


def deep_value(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"note": value}
    return value


def _json_text(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False)  # NaN/Infinity literals included
    except ValueError:  # an int json cannot write (over 4,300 digits)
        return "{}"


member = st.one_of(
    st.dictionaries(keys, json_values, max_size=6).map(_json_text),  # JSON text, as on the topic
    st.dictionaries(keys, json_values, max_size=6),  # already a dict
    json_values,  # not an object at all
    st.sampled_from(['{"url": "http://["}', '{"revenue": NaN}', '{"revenue": 1e999}',
                     '{"revenue": -Infinity}', '{"note": "\\ud800"}', '{"\\udc00": 1}',
                     '{"revenue": 1' + "0" * 5000 + "}", '{"note": ' + deep_text(3000) + "}",
                     '{"note": ' + deep_text(100) + "}", "{", "nul"]),
)
timestamps = st.one_of(st.integers(T0 - 3 * H, T0 + 3 * H), json_values)
page_or_track = st.sampled_from(["page", "track", "identify", "screen", "group", "alias"])


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    ev = event(draw(page_or_track), T0, draw(st.sampled_from(["p1", "p2"])))
    ev["timestamp"] = draw(timestamps)
    ev["received_at"] = draw(st.one_of(st.integers(T0 - H, T0 + H), json_values))
    for name in ("properties", "traits", "context"):
        ev[name] = draw(member)
    for name in ("type", "event", "name", "message_id", "anonymous_id", "user_id", "source"):
        if draw(st.booleans()):
            ev[name] = draw(json_values)
    if draw(st.booleans()):
        ev["identifiers"] = draw(json_values)
    return ev


def check(rules: Any, batch: list[dict[str, Any]]) -> None:
    engine = Engine(rules, T0, max_traits_per_profile=5)
    states: dict[str, ProfileState] = {}
    for offset, ev in enumerate(batch):
        oneid = ev["oneid"] if isinstance(ev.get("oneid"), str) else "p1"
        engine.on_event(states.setdefault(oneid, ProfileState(oneid)), 0, offset, ev)
    for st_ in states.values():
        engine.finish_profile(st_)
        payload = st_.payload()
        if payload is not None:
            orjson.dumps(payload)  # what the store sends: raises on lone surrogates, huge ints
        snapshot = engine.snapshot(st_, T0 + H)
        json.dumps(snapshot, allow_nan=False).encode("utf-8")
    for trigger in engine.pending:
        json.loads(trigger["values"], parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        trigger["values"].encode("utf-8")
        assert isinstance(trigger["event_time"], int)
    sweep = Engine(rules, T0 + 5 * H)
    for st_ in states.values():
        for sid, view in list(st_.views.items()):
            sweep.on_due(st_, "v", sid, float(view.due_ms() or 0), T0 + 5 * H)
        for tid, timer in list(st_.delayed.items()):
            sweep.on_due(st_, "d", tid, float(timer["due"]), T0 + 5 * H)
        payload = st_.payload(partition=0)
        if payload is not None:
            orjson.dumps(payload)
    for trigger in sweep.pending:
        values = json.loads(trigger["values"]).values()
        assert not any(isinstance(v, float) and not math.isfinite(v) for v in values)


def hostile(**members: Any) -> list[dict[str, Any]]:
    ev = event("track", T0, name="Order Completed")
    ev.update(members)
    return [ev]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch=st.lists(events(), min_size=1, max_size=5))
# found: urlsplit raised ValueError ("Invalid IPv6 URL") and stalled the stage
@example(batch=hostile(type="page", properties='{"url": "http://["}'))
# found: a NaN/inf revenue entered sums ("inf" in Redis) and trigger values as invalid JSON
@example(batch=hostile(properties='{"revenue": NaN, "note": Infinity}'))
@example(batch=hostile(properties={"revenue": float("inf")}))
@example(batch=hostile(properties='{"revenue": 1e308}') + hostile(properties='{"revenue": 1e308}'))
# found: lone surrogates reached the orjson payload (traits, paths, tag names, trigger values)
@example(batch=hostile(type="identify", traits='{"\\ud800": "\\udfff"}'))
@example(batch=hostile(type="page", properties={"path": "/features/\ud800"}))
@example(batch=hostile(message_id="m\ud800", anonymous_id="\udc00"))
# found: json.loads raised RecursionError on deep nesting; deep dicts segfault the CEL runtime
@example(batch=hostile(properties='{"note": ' + deep_text(5000) + "}"))
@example(batch=hostile(properties={"note": deep_value(20_000)}, type="identify",
                       traits={"x": deep_value(900)}))
# found: str() of a 5,000-digit int raised ValueError (session ids, trait JSON)
@example(batch=hostile(anonymous_id=10**5000, type="page"))
@example(batch=hostile(type="identify", traits={"plan": 10**5000}))
# found: unhashable type/name (list, dict) raised TypeError in the rule index
@example(batch=hostile(type=["track"], event={"a": 1}))
# found: a negative or non-int timestamp raised in the trait stamp / int()
@example(batch=hostile(timestamp=-1, type="identify", traits='{"a": 1}'))
@example(batch=hostile(timestamp="1700000000000"))
# found: set/bytes values (dict input) failed CEL conversion outside the condition's try
@example(batch=hostile(properties={"note": {1, 2}, "revenue": b"x"}, context={None: 1}))
def test_the_engine_never_raises(batch: list[dict[str, Any]]) -> None:
    check(READS_EVERYTHING, batch)
    check(DEFAULTS, batch)
