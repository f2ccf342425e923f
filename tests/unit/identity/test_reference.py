"""Merge, limit and guard semantics of the OneID rules, pinned through the reference resolver
(identity/reference.py, checked against the Lua by tests/integration/test_identity_reference.py)."""

from __future__ import annotations

import copy

import pytest
import yaml

from identity.reference import ReferenceGraph
from identity.rules import DAY_MS, DEFAULT_RULES_PATH, IdentityRules, parse_rules
from tests.conftest import TEST_PSEUDONYMS, oneid_for

MIN = 60_000


def rules(**changes: object) -> IdentityRules:
    """The default rules with ``a__b=value`` changes."""
    data = copy.deepcopy(yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8")))
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for name in parents:
            node = node.setdefault(name, {})
        node[last] = value
    return parse_rules(data)


def ev(message_id: str, ts: int, *ids: tuple[str, str]) -> dict:
    identifiers = [{"type": t, "value": v} for t, v in ids]
    return {"message_id": message_id, "timestamp": ts, "identifiers": identifiers}


def oneid_of(type_: str, value: str) -> str:
    return oneid_for(type_, value)


def reasons(result) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(r["type"], r["reason"]) for r in result.rejections]


@pytest.fixture()
def graph() -> ReferenceGraph:
    return ReferenceGraph(rules(), pseudonyms=TEST_PSEUDONYMS)


def test_a_new_identifier_creates_a_profile_named_after_it(graph):
    result = graph.resolve_batch([ev("m1", 1000, ("email", "a@qq.com"), ("user_id", "u1"))])
    # the highest-priority identifier creates the profile; the rest hang on it
    assert result.oneids == [oneid_of("user_id", "u1")]
    assert graph.profile_identifiers(result.oneids[0]) == {"email": ["a@qq.com"], "user_id": ["u1"]}
    edges = {e.type: e for e in graph.edges(result.oneids[0])}
    assert edges["user_id"].anchor is None and edges["email"].anchor == ("user_id", "u1")


def test_the_older_profile_survives_a_merge_and_earlier_events_answer_it(graph):
    result = graph.resolve_batch(
        [
            ev("m1", 5000, ("user_id", "u1")),
            ev("m2", 1000, ("anonymous_id", "a1")),  # younger by arrival, older by event time
            ev("m3", 6000, ("anonymous_id", "a1"), ("user_id", "u1")),
        ]
    )
    anon, user = oneid_of("anonymous_id", "a1"), oneid_of("user_id", "u1")
    assert result.oneids == [anon, anon, anon]
    [merge] = result.merges
    assert (merge["survivor"], merge["merged"], merge["reason"]) == (anon, user, "shared:anonymous_id")
    assert graph.resolve_alias(user) == anon


def test_two_people_are_never_merged_the_lower_identifier_gives_way(graph):
    graph.resolve_batch([ev("m1", 1000, ("user_id", "u1"), ("email", "shared@qq.com"))])
    result = graph.resolve_batch([ev("m2", 2000, ("user_id", "u2"), ("email", "shared@qq.com"))])
    assert result.oneids == [oneid_of("user_id", "u2")] and result.merges == []
    assert reasons(result) == [("email", "limit:user_id")]
    assert graph.lookup("email", "shared@qq.com") == oneid_of("user_id", "u1")


def test_a_windowed_limit_counts_only_links_inside_the_window():
    graph = ReferenceGraph(rules(types__email={"max": 2, "window_days": 30}), pseudonyms=TEST_PSEUDONYMS)
    graph.resolve_batch([ev("m1", 0, ("user_id", "u1"), ("email", "e1@qq.com"), ("email", "e2@qq.com"))])
    early = graph.resolve_batch([ev("m2", 10 * DAY_MS, ("user_id", "u1"), ("email", "e3@qq.com"))])
    assert reasons(early) == [("email", "limit:email")]
    late = graph.resolve_batch([ev("m3", 31 * DAY_MS, ("user_id", "u1"), ("email", "e3@qq.com"))])
    assert reasons(late) == []
    assert graph.profile_identifiers(late.oneids[0])["email"] == ["e1@qq.com", "e2@qq.com", "e3@qq.com"]


def test_a_profile_holds_at_most_max_members():
    graph = ReferenceGraph(rules(max_members=3), pseudonyms=TEST_PSEUDONYMS)
    first = graph.resolve_batch(
        [ev("m1", 1000, ("user_id", "u1"), ("email", "e1@qq.com"), ("phone", "+8613900000001"))]
    )
    assert reasons(first) == []
    more = graph.resolve_batch([ev("m2", 2000, ("user_id", "u1"), ("anonymous_id", "a1"))])
    assert reasons(more) == [("anonymous_id", "profile_full")]
    # a merge that would overflow is refused the same way
    graph.resolve_batch([ev("m3", 3000, ("anonymous_id", "a1"), ("device_id", "d1"))])
    merge = graph.resolve_batch([ev("m4", 4000, ("user_id", "u1"), ("anonymous_id", "a1"))])
    assert merge.merges == [] and reasons(merge) == [("anonymous_id", "profile_full")]


def test_a_shared_device_moves_to_a_newer_login_never_to_an_older_one(graph):
    graph.resolve_batch([ev("m1", 10 * MIN, ("user_id", "u1"), ("device_id", "d1"))])
    newer = graph.resolve_batch([ev("m2", 20 * MIN, ("user_id", "u2"), ("device_id", "d1"))])
    assert [(m["from_oneid"], m["to_oneid"]) for m in newer.moves] == [
        (oneid_of("user_id", "u1"), oneid_of("user_id", "u2"))
    ]
    # u1's login from before the move arrives late: the device stays with u2
    late = graph.resolve_batch([ev("m3", 15 * MIN, ("user_id", "u1"), ("device_id", "d1"))])
    assert late.moves == [] and reasons(late) == [("device_id", "newer_link")]
    # anonymous traffic never re-points: only a login carries its person
    anonymous = graph.resolve_batch([ev("m4", 30 * MIN, ("device_id", "d1"), ("email", "x@qq.com"))])
    assert anonymous.moves == [] and anonymous.oneids == [oneid_of("user_id", "u2")]


def test_a_value_seen_with_too_many_people_stops_linking(graph):
    # device_id: frequency_guard.types.device_id = 5 people
    for n in range(1, 6):
        result = graph.resolve_batch([ev(f"m{n}", n * DAY_MS, ("user_id", f"u{n}"), ("device_id", "d1"))])
        assert reasons(result) == []
    sixth = graph.resolve_batch([ev("m6", 6 * DAY_MS, ("user_id", "u6"), ("device_id", "d1"))])
    assert reasons(sixth) == [("device_id", "frequency_guard")]
    assert graph.lookup("device_id", "d1") is None
    later = graph.resolve_batch([ev("m7", 7 * DAY_MS, ("device_id", "d1"))])
    assert later.oneids == [None] and reasons(later) == [("device_id", "frequency_guard")]


def test_what_python_screens_never_reaches_the_graph():
    graph = ReferenceGraph(rules(), max_identifiers_per_event=3, pseudonyms=TEST_PSEUDONYMS)
    result = graph.resolve_batch(
        [
            ev(
                "m1", 1000, ("email", "test@test.com"), ("twitter", "@x"), ("anonymous_id", "a1"),
                ("device_id", "d1"), ("user_id", "u1"),
            )
        ]
    )
    assert reasons(result) == [
        ("device_id", "too_many_identifiers"),
        ("user_id", "too_many_identifiers"),
        ("email", "blocked"),
        ("twitter", "unknown_type"),
    ]
    assert result.oneids == [oneid_of("anonymous_id", "a1")]


def test_only_anonymous_profiles_are_collected_once_idle(graph):
    visitor = graph.resolve_batch([ev("m1", 1000, ("anonymous_id", "a1"))], now_ms=DAY_MS).oneids[0]
    person = graph.resolve_batch([ev("m2", 1000, ("anonymous_id", "a2"), ("email", "x@qq.com"))],
                                 now_ms=DAY_MS).oneids[0]
    # idleness is judged by receipt time: a late import of old events is not idle
    assert graph.collect_idle_anonymous(now_ms=DAY_MS + 10, idle_ms=DAY_MS) == []
    assert graph.collect_idle_anonymous(now_ms=3 * DAY_MS, idle_ms=DAY_MS) == [visitor]
    assert graph.lookup("anonymous_id", "a1") is None and graph.lookup("anonymous_id", "a2") == person
