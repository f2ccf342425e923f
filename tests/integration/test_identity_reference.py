"""The pure-Python reference resolver (identity/reference/) against the real Lua on Redis.

Random sequences of batches over small value pools (so merges, limits, guard hits and moves are
frequent), interleaved with operator splits, erasures and idle collection, go through both (a
fresh graph prefix per case); every batch must answer the same OneIDs, merges, rejections and
moves, every action the same result or error, and afterwards the graphs must hold the same index,
aliases, edges (anchors, "since" and trust marks included, which decide later re-points and
take-overs) and anonymous set. About a third of the events are untrusted (browser keys).
The Lua is the behaviour: a failure here is fixed in the reference, unless it shows a bug in the
Lua. 3 rule sets x 400 cases (about 15 s); ``--hypothesis-show-statistics`` shows what they hit.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context, event

from identity.exceptions import IdentityError
from identity.graph import HOT, IdentityGraph, UnmergeResult
from identity.reference import ReferenceGraph
from identity.rules import DAY_MS, IdentityRules, load_rules, parse_rules
from tests.conftest import TEST_PSEUDONYMS, oneid_for

MINUTE = 60_000
T0 = 1_700_000_000_000
NOW = T0 + 40 * DAY_MS

#: Small pools per type: most events meet identifiers seen before.
POOLS: dict[str, list[str]] = {
    "user_id": ["u1", "u2", "u3", "u4"],
    "crm_id": ["c1", "c2"],
    "email": ["e1@qq.com", "e2@qq.com", "e3@qq.com", "e4@qq.com", "test@test.com"],
    "phone": ["+8613900000001", "+8613900000002", "+8613900000003"],
    "wechat_unionid": ["un1", "un2"],
    "wechat_openid": ["op1", "op2", "op3"],
    "device_id": ["d1", "d2", "d3", "d4"],
    "anonymous_id": ["a1", "a2", "a3", "a4", "a5", "null"],
    "loyalty_id": ["l1", "l2"],  # unknown to the rules: rejected or linked, by rule set
}
#: Weighted: the common web/app types appear more often.
TYPES = [
    "anonymous_id", "anonymous_id", "anonymous_id", "device_id", "device_id", "user_id", "user_id",
    "user_id", "email", "email", "phone", "wechat_openid", "wechat_unionid", "crm_id", "loyalty_id",
]

_BASE = load_rules()
_TIGHT_YAML: dict[str, Any] = {
    "person_key": "user_id",
    "priority": ["user_id", "crm_id", "email", "phone", "wechat_unionid", "wechat_openid", "device_id",
                 "anonymous_id"],
    "unknown_types": "link",
    "max_members": 6,
    "types": {
        "user_id": {"max": 1},
        "crm_id": {"max": 1},
        "email": {"max": 2, "window_days": 5},
        "phone": {"max": 2},
        "wechat_unionid": {"max": 1},
        "wechat_openid": {"max": 2},
        "device_id": {"max": 2, "window_days": 3, "repoint": True},
        "anonymous_id": {"max": 3, "window_days": 2, "repoint": True},
    },
    "blocked": {"any": {"values": ["null"]}, "email": {"values": ["test@test.com"]}},
    "frequency_guard": {"max_persons": 2, "types": {"device_id": 2, "anonymous_id": 3}},
    "storage": {"index_buckets": 64},
}
_LOOSE_YAML: dict[str, Any] = {
    **_TIGHT_YAML,
    "unknown_types": "reject",
    "max_members": 9,
    "types": {
        "user_id": {"max": 2},
        "email": {"max": 3, "window_days": 4, "repoint": True},
        "device_id": {"max": 3, "repoint": True},
        "anonymous_id": {"max": 4, "window_days": 1, "repoint": True},
    },
    "frequency_guard": {"max_persons": 3, "types": {"anonymous_id": 2}},
}
RULES: dict[str, tuple[IdentityRules, int]] = {
    "default": (_BASE, 20),
    "tight": (parse_rules(_TIGHT_YAML, source="tight"), 4),
    "loose": (parse_rules(_LOOSE_YAML, source="loose"), 6),
}

pooled = st.sampled_from(TYPES).flatmap(
    lambda t: st.sampled_from(POOLS[t]).map(lambda v: {"type": t, "value": v})
)
#: What the Python side screens out before the script: not UTF-8, not a string.
junk = st.sampled_from([{"type": "email", "value": "x\ud800@qq.com"}, {"type": "device_id", "value": 7}])
identifiers = st.one_of(pooled, pooled, pooled, pooled, pooled, pooled, pooled, pooled, junk)
#: A login on a shared device or browser: several people meeting one value feeds the frequency guard.
shared = st.sampled_from([("device_id", "d1"), ("anonymous_id", "a1"), ("email", "e1@qq.com"),
                          ("wechat_openid", "op1")])
logins = st.tuples(st.sampled_from(POOLS["user_id"]), st.lists(shared, min_size=1, max_size=2)).map(
    lambda p: [{"type": "user_id", "value": p[0]}] + [{"type": t, "value": v} for t, v in p[1]]
)
# days apart (windows) and minutes apart (the 5-minute refresh of shared identifiers), ties included
timestamps = st.builds(lambda d, m: T0 + d * DAY_MS + m * MINUTE, st.integers(0, 9), st.integers(0, 12))
#: A visitor not logged in: only anonymous types (their profiles are collected once idle).
anonymous_types = st.sampled_from(["anonymous_id", "anonymous_id", "device_id"])
visits = st.lists(
    anonymous_types.flatmap(lambda t: st.sampled_from(POOLS[t]).map(lambda v: {"type": t, "value": v})),
    min_size=1,
    max_size=2,
)
#: About one event in three comes from an untrusted (browser) key: it links but never merges two
#: people, and a trusted event that disagrees with what it linked takes the identifier over.
trust = st.sampled_from([True, True, False])
events = st.tuples(timestamps, st.one_of(st.lists(identifiers, min_size=0, max_size=6), logins, visits),
                   trust)
batch = st.lists(events, min_size=1, max_size=8)
#: An operator's split or erasure of a linked identifier's profile: (kind, which identifier, where to
#: split), indexes into what is linked when it runs; a value never linked answers "not found".
operation = st.tuples(
    st.sampled_from(["unmerge", "unmerge", "delete", "collect"]), st.integers(0, 40), st.integers(0, 40)
)
steps = st.lists(st.one_of(batch, batch, batch, operation), min_size=1, max_size=6)


def _materialise(raw: list[Any]) -> list[Any]:
    """Batches become events with unique message ids; operations stay tuples."""
    out: list[Any] = []
    n = 0
    for step in raw:
        if isinstance(step, tuple):
            out.append(step)
            continue
        rows = []
        for ts, ids, *trusted in step:
            n += 1
            rows.append({"message_id": f"m{n}", "timestamp": ts, "identifiers": ids,
                         "trusted": trusted[0] if trusted else True})
        out.append(rows)
    return out


def _note(what: str) -> None:
    """Count what the generated cases exercised (pytest --hypothesis-show-statistics)."""
    if currently_in_test_context():
        event(what)


def _outcome(action: Callable[[], Any]) -> Any:
    """What an operator action answered, or the kind of error it raised."""
    try:
        return action()
    except IdentityError as exc:
        return type(exc)


def _operate(graph: IdentityGraph, ref: ReferenceGraph, step: tuple[str, int, int]) -> set[str]:
    kind, which, where = step
    state = ref.state
    linked = sorted(tv for tv, owner in state.index.items() if owner != HOT)
    if linked:
        oneid = state.index[linked[which % len(linked)]]
        members = sorted(state.profiles[oneid].members)
        type_, _, value = members[where % len(members)].partition(":")
    else:
        oneid, type_, value = oneid_for("user_id", "u1"), "user_id", "u1"
    if kind == "collect":  # idle anonymous profiles: receipt times are NOW + a day per step
        now, idle = NOW + (which % 10) * DAY_MS, (where % 3) * DAY_MS
        got = _outcome(lambda: graph.collect_idle_anonymous(now, idle))
        want = _outcome(lambda: ref.collect_idle_anonymous(now, idle))
    elif kind == "delete":
        got = _outcome(lambda: graph.delete_profile(oneid, actor="test"))
        want = _outcome(lambda: ref.delete_profile(oneid))
    else:
        got = _outcome(lambda: graph.unmerge(oneid, type_, value, actor="test"))
        want = _outcome(lambda: ref.unmerge(oneid, type_, value))
        if isinstance(got, UnmergeResult) and isinstance(want, UnmergeResult):
            got = dataclasses.replace(got, at_ms=want.at_ms)  # Redis's clock, not the reference's
    assert got == want
    _note(f"{kind} {want.__name__ if isinstance(want, type) else 'done' if want else 'nothing'}")
    return {want.new_oneid} if isinstance(want, UnmergeResult) else set()


def _untrusted(ref: ReferenceGraph) -> set[tuple[str, str, str]]:
    """(OneID, type, value hash) of every identifier only untrusted events asserted."""
    return {(oneid, *_hashed(tv)) for oneid, profile in ref.state.profiles.items()
            for tv, rec in profile.members.items() if rec.untrusted}


def _hashed(tv: str) -> tuple[str, str]:
    type_, _, value = tv.partition(":")
    return type_, TEST_PSEUDONYMS.of(type_, value)


def _clock_free(scores: dict[str, int]) -> dict[str, int | str]:
    """Last-seen times; those the scripts took from Redis's clock (years after the generated
    receipt times) only as "clock": the two clocks differ by the time a call takes."""
    return {o: "clock" if seen > NOW + 365 * DAY_MS else seen for o, seen in scores.items()}


def _anonymous(redis_client: redis.Redis, graph: IdentityGraph) -> dict[str, int | str]:
    entries = redis_client.zrange(graph.anonymous_key, 0, -1, withscores=True)
    return _clock_free({member.decode(): int(score) for member, score in entries})


def _keys(graph: IdentityGraph, oneids: set[str]) -> list[str]:
    """Every key this example can have written (cheaper than a SCAN of the shared Redis)."""
    keys = [graph.meta_key, graph.base + "mo", graph.anonymous_key, graph.suppression_key, graph.audit_key]
    for type_, values in POOLS.items():
        for value in values:
            keys.append(graph.index_key(type_, value))
            keys.append(graph.guard_key(type_, value))
    for oneid in oneids:
        keys += [graph.profile_key(oneid), graph.alias_key(oneid)]
    return keys


def _compare(redis_client: redis.Redis, settings: Any, rules_name: str, raw: list) -> None:
    rules, cap = RULES[rules_name]
    prefix = f"{settings.redis_prefix}idref:{uuid.uuid4().hex[:10]}:"
    graph = IdentityGraph(redis_client, prefix, rules, max_identifiers_per_event=cap,
                          pseudonyms=TEST_PSEUDONYMS)
    ref = ReferenceGraph(rules, max_identifiers_per_event=cap, pseudonyms=TEST_PSEUDONYMS)
    oneids: set[str] = set()
    try:
        for n, step in enumerate(_materialise(raw)):
            if isinstance(step, tuple):
                oneids |= _operate(graph, ref, step)
                continue
            untrusted = _untrusted(ref)
            got = graph.resolve_batch(step, now_ms=NOW + n * DAY_MS)
            want = ref.resolve_batch(step, now_ms=NOW + n * DAY_MS)
            assert got == want
            for r in got.rejections:
                _note(f"rejection {r['reason']}")
            if got.merges:
                _note("merge")
            if got.moves:
                _note("move")
            if any((m["from_oneid"], m["type"], m["value_hash"]) in untrusted for m in got.moves):
                _note("trusted take-over of an untrusted identifier")
            if any(not e["trusted"] for e in step):
                _note("untrusted event")
            oneids.update(o for o in got.oneids if o)
            oneids.update(m["merged"] for m in got.merges)
            oneids.update(m["from_oneid"] for m in got.moves)
        for type_, values in POOLS.items():
            for value in values:
                assert graph.lookup(type_, value) == ref.lookup(type_, value), (type_, value)
        for oneid in oneids:
            assert graph.resolve_alias(oneid) == ref.resolve_alias(oneid), oneid
        for oneid in ref.state.profiles:
            assert graph.edges(oneid) == ref.edges(oneid), oneid
        assert _anonymous(redis_client, graph) == _clock_free(ref.state.anonymous)
        oneids.update(ref.state.profiles)
    finally:
        redis_client.delete(*_keys(graph, oneids))


_SETTINGS = hypothesis_settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("rules_name", sorted(RULES))
@_SETTINGS
@given(raw=steps)
def test_reference_resolves_like_the_lua(redis_client, settings, rules_name, raw) -> None:
    _compare(redis_client, settings, rules_name, raw)


def _ids(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"type": t, "value": v} for t, v in pairs]


def test_a_profile_left_with_only_anonymous_identifiers_becomes_collectable(redis_client, settings) -> None:
    # Rare for the generator: a re-point takes the only strong identifier out of a profile
    # (loose rules: email re-points; the login's profile is one short of max_members).
    full = [("crm_id", "c1"), ("phone", "+8613900000001"), ("phone", "+8613900000002"),
            ("wechat_openid", "op1"), ("wechat_openid", "op2"), ("wechat_openid", "op3"),
            ("phone", "+8613900000003")]
    raw = [
        [(T0, _ids(("email", "e1@qq.com"), ("anonymous_id", "a1")))],
        [(T0 + MINUTE, _ids(("user_id", "u1"), *full[:5])),
         (T0 + MINUTE, _ids(("user_id", "u1"), *full[5:]))],
        [(T0 + DAY_MS, _ids(("user_id", "u1"), ("email", "e1@qq.com")))],
    ]
    _compare(redis_client, settings, "loose", raw)
