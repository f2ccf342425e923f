"""The OneID graph against hostile input on the real Redis: huge argument lists, too many
identifiers per event or per person, sprayed frequency-guard values, and idle anonymous profiles."""

from __future__ import annotations

import copy
import time
import uuid

import pytest
import redis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from identity.graph import IdentityGraph
from identity.rules import DAY_MS, DEFAULT_RULES_PATH, load_rules, parse_rules
from identity.synthetic import generate
from tests.conftest import TEST_PSEUDONYMS, oneid_for
from touchstream.errors import ConfigError

DAY = DAY_MS


def ev(message_id: str, ts: int, *ids: tuple[str, str]) -> dict:
    identifiers = [{"type": t, "value": v} for t, v in ids]
    return {"message_id": message_id, "timestamp": ts, "identifiers": identifiers}


def seen(graph: IdentityGraph, event: dict):  # type: ignore[no-untyped-def]
    """Resolve one event as if it arrived at its own timestamp (the anonymous set's clock)."""
    return graph.resolve_batch([event], now_ms=event["timestamp"])


def oneid_of(type_: str, value: str) -> str:
    return oneid_for(type_, value)


def rules_with(**changes: object):
    data = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    data = copy.deepcopy(data)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = data
        for name in parents:
            node = node.setdefault(name, {})
        node[last] = value
    return parse_rules(data)


@pytest.fixture()
def prefix(settings) -> str:
    return f"{settings.redis_prefix}idh:{uuid.uuid4().hex[:8]}:"


def make(redis_client: redis.Redis, prefix: str, rules=None, **kwargs) -> IdentityGraph:
    return IdentityGraph(redis_client, prefix, rules or load_rules(), pseudonyms=TEST_PSEUDONYMS, **kwargs)


@pytest.fixture()
def graph(redis_client, prefix):
    graph = make(redis_client, prefix)
    yield graph
    assert graph.check_consistency() == []


def reasons(result) -> list[tuple[str, str]]:
    return [(r["type"], r["reason"]) for r in result.rejections]


# ---- 1. variadic calls in chunks ----


def test_an_event_with_12000_identifiers_resolves_while_suppression_is_on(redis_client, prefix):
    # Only reachable with a configured cap this high: the suppression check used to HMGET all
    # 12,000 hashes in one call, and Lua's unpack gives up near 8,000 ("too many results").
    rules = rules_with(unknown_types="link", max_members=20_000)
    graph = make(redis_client, prefix, rules, max_identifiers_per_event=12_000)
    [gone] = graph.resolve_batch([ev("m0", 1000, ("user_id", "deleted"))]).oneids
    graph.delete_profile(gone, actor="dpo")  # from now on every batch checks suppression
    ids = [("loyalty_id", f"L{i:05d}") for i in range(12_000)]
    result = graph.resolve_batch([ev("big", 2000, *ids)])
    [oneid] = result.oneids
    assert oneid is not None and result.rejections == []
    assert len(graph.profile_identifiers(oneid)["loyalty_id"]) == 12_000
    # erasing it writes 12,000 suppression entries, and they are all honoured afterwards
    graph.delete_profile(oneid, actor="dpo", suppress_ms=3_600_000)
    late = graph.resolve_batch([ev("late", 3000, *ids)])
    assert late.oneids == [None] and {r["reason"] for r in late.rejections} == {"suppressed"}
    assert len(late.rejections) == 12_000
    assert graph.check_consistency() == []


def test_unmerge_recounts_a_profile_of_5000_types(redis_client, prefix):
    # recount wrote every "!n:<type>" count in one HSET: 10,000 values for 5,000 types
    rules = rules_with(unknown_types="link", max_members=6_000)
    graph = make(redis_client, prefix, rules, max_identifiers_per_event=6_000)
    ids = [("user_id", "u1")] + [(f"t{i}", "v") for i in range(5_000)]
    [oneid] = graph.resolve_batch([ev("wide", 1000, *ids)]).oneids
    split = graph.unmerge(oneid, "t42", "v", actor="ops")
    assert split.identifiers == [{"type": "t42", "value": "v"}]
    assert len(graph.profile_identifiers(oneid)) == 5_000  # user_id + 4,999 types
    assert redis_client.hget(graph.profile_key(oneid), "!n:t43") == b"1"
    assert redis_client.hget(graph.profile_key(oneid), "!n:t42") is None
    assert graph.check_consistency() == []


# ---- 2a. identifiers per event ----


def test_identifiers_past_the_cap_are_rejections_not_drops(graph):
    ids = [("user_id", "u1")] + [("anonymous_id", f"a{i}") for i in range(24)]
    result = graph.resolve_batch([ev("m1", 1000, *ids)])
    [oneid] = result.oneids
    assert oneid == oneid_of("user_id", "u1")
    extra = [r for r in result.rejections if r["reason"] == "too_many_identifiers"]
    assert [(r["type"], r["value_hash"]) for r in extra] == [
        ("anonymous_id", TEST_PSEUDONYMS.of("anonymous_id", f"a{i}")) for i in range(19, 24)
    ]
    assert all(r["oneid"] == oneid and r["message_id"] == "m1" and r["timestamp"] == 1000 for r in extra)
    assert len(graph.profile_identifiers(oneid)["anonymous_id"]) == 19
    assert graph.lookup("anonymous_id", "a19") is None


def test_the_cap_is_a_keyword_constructor_parameter(redis_client, prefix):
    small = make(redis_client, prefix, max_identifiers_per_event=2)
    three = ev("m1", 1000, ("user_id", "u1"), ("email", "e@qq.com"), ("phone", "+8613912345678"))
    result = small.resolve_batch([three])
    assert reasons(result) == [("phone", "too_many_identifiers")]
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ConfigError, match="max_identifiers_per_event"):
            make(redis_client, prefix, max_identifiers_per_event=bad)
    with pytest.raises(TypeError):
        IdentityGraph(redis_client, prefix, load_rules(), 5, pseudonyms=TEST_PSEUDONYMS)  # keyword-only


def test_values_that_skipped_the_normaliser_are_rejected_not_crashing(graph):
    result = graph.resolve_batch([
        ev("m1", 1000, ("user_id", "u1"), ("anonymous_id", "\ud800"), ("device_id", "d" * 600)),
        {"message_id": "m2", "timestamp": 1000,
         "identifiers": [{"type": "user_id", "value": 12345}, {"type": 7, "value": "x"},
                         {"type": "\udc00" + "t" * 100, "value": "x"}]},
    ])
    assert result.oneids == [oneid_of("user_id", "u1"), None]
    assert reasons(result) == [("anonymous_id", "invalid_value"), ("device_id", "invalid_value"),
                               ("user_id", "invalid_value"), ("unknown", "invalid_value"),
                               ("?" + "t" * 39, "unknown_type")]
    assert all(len(r["value_hash"]) == 64 for r in result.rejections)


identifier_lists = st.lists(
    st.fixed_dictionaries({
        "type": st.one_of(st.sampled_from(["user_id", "email", "anonymous_id", "device_id", "loyalty_id"]),
                          st.text(max_size=50)),
        "value": st.one_of(st.text(min_size=1, max_size=30), st.text(min_size=500, max_size=700),
                           st.sampled_from(["\ud800", "a:b:c", "\x00", "*?[]", "undefined"])),
    }),
    max_size=30,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(identifier_lists, min_size=1, max_size=5))
def test_any_identifiers_resolve_without_an_error(graph, batch):
    events = [{"message_id": f"m{i}", "timestamp": 1000 + i, "identifiers": ids}
              for i, ids in enumerate(batch)]
    result = graph.resolve_batch(events)
    assert len(result.oneids) == len(events)
    for rejection in result.rejections:
        rejection["type"].encode("utf-8")
        assert len(rejection["value_hash"]) == 64 and rejection["reason"]
    for event, oneid in zip(events, result.oneids, strict=True):
        if len(event["identifiers"]) > 20:
            mine = [r for r in result.rejections if r["message_id"] == event["message_id"]]
            assert sum(r["reason"] == "too_many_identifiers" for r in mine) == len(event["identifiers"]) - 20
        if oneid is not None:
            assert sum(len(v) for v in graph.profile_identifiers(oneid).values()) <= 200


# ---- 2b. identifiers per profile ----


def test_a_profile_is_full_at_max_members(redis_client, prefix):
    rules = rules_with(unknown_types="link", max_members=5)
    graph = make(redis_client, prefix, rules)
    loyalty = [("loyalty_id", f"l{i}") for i in range(6)]
    first = graph.resolve_batch([ev("m1", 1000, ("user_id", "u1"), *loyalty)])
    [oneid] = first.oneids
    assert reasons(first) == [("loyalty_id", "profile_full")] * 2
    assert sum(len(v) for v in graph.profile_identifiers(oneid).values()) == 5
    later = graph.resolve_batch([ev("m2", 2000, ("user_id", "u1"), ("loyalty_id", "l9"))])
    assert later.oneids == [oneid] and reasons(later) == [("loyalty_id", "profile_full")]
    # a type with its own max keeps its own reason first
    full = graph.resolve_batch([ev("m3", 3000, ("user_id", "u1"), ("crm_id", "c1"))])
    assert reasons(full) == [("crm_id", "profile_full")]
    assert graph.check_consistency() == []


def test_a_merge_past_max_members_is_refused(redis_client, prefix):
    graph = make(redis_client, prefix, rules_with(max_members=4))
    three = ev("m1", 1000, ("email", "a@qq.com"), ("anonymous_id", "a1"), ("anonymous_id", "a2"))
    [a] = graph.resolve_batch([three]).oneids
    [b] = graph.resolve_batch([ev("m2", 2000, ("phone", "+8613912345678"), ("device_id", "d1"))]).oneids
    result = graph.resolve_batch([ev("m3", 3000, ("email", "a@qq.com"), ("device_id", "d1"))])
    assert result.oneids == [a] and result.merges == []
    assert reasons(result) == [("device_id", "profile_full")]
    assert graph.lookup("device_id", "d1") == b
    # room for one more: a new identifier still links
    assert reasons(graph.resolve_batch([ev("m4", 4000, ("email", "a@qq.com"), ("device_id", "d2"))])) == []
    assert graph.check_consistency() == []


def test_default_rules_bound_a_person_spraying_anonymous_ids(graph):
    # anonymous_id allows 50 per 7 days, so 8 weeks of spraying used to link 400 of them
    events = [ev(f"m{i}", 1000 + (i // 50) * 8 * DAY + i, ("user_id", "u1"), ("anonymous_id", f"a{i}"))
              for i in range(400)]
    results = [graph.resolve_batch(events[i : i + 50]) for i in range(0, 400, 50)]
    members = graph.profile_identifiers(oneid_of("user_id", "u1"))
    assert len(members["anonymous_id"]) == 199  # 200 with the user_id
    full = [r for res in results for r in res.rejections if r["reason"] == "profile_full"]
    assert len(full) == 400 - 199


# ---- 3. frequency-guard sets expire ----


def guard_key(graph: IdentityGraph, type_: str, value: str) -> str:
    """The people-seen-with set of a contested value (layout in graph_lib.lua)."""
    return f"{graph.base}f:{type_}:{TEST_PSEUDONYMS.of(type_, value)[:16]}"


def test_frequency_guard_sets_expire_and_are_refreshed(redis_client, prefix):
    graph = make(redis_client, prefix, rules_with(frequency_guard__window_days=2))
    graph.resolve_batch([ev("m1", 1000, ("user_id", "u1"), ("email", "shared@qq.com"))])
    graph.resolve_batch([ev("m2", 2000, ("user_id", "u2"), ("email", "shared@qq.com"))])
    key = guard_key(graph, "email", "shared@qq.com")
    assert 2 * DAY - 60_000 < redis_client.pttl(key) <= 2 * DAY
    redis_client.pexpire(key, 5_000)
    graph.resolve_batch([ev("m3", 3000, ("user_id", "u3"), ("email", "shared@qq.com"))])
    assert redis_client.pttl(key) > 2 * DAY - 60_000  # written again: refreshed
    assert redis_client.scard(key) == 3
    default = make(redis_client, prefix + "d:")
    default.resolve_batch([ev("m1", 1000, ("user_id", "u1"), ("email", "s@qq.com")),
                           ev("m2", 2000, ("user_id", "u2"), ("email", "s@qq.com"))])
    key = guard_key(default, "email", "s@qq.com")
    assert 89 * DAY < redis_client.pttl(key) <= 90 * DAY


# ---- 4. idle anonymous profiles ----


def anonymous_set(client: redis.Redis, graph: IdentityGraph) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in client.zrange(graph.anonymous_key, 0, -1, withscores=True)}


def anonymous_only(graph: IdentityGraph) -> set[str]:
    """What the set should hold, computed from the profiles themselves."""
    out = set()
    pattern = graph.base.replace("{", "\\{").replace("}", "\\}") + "p:*"
    for key in graph.redis.scan_iter(match=pattern, count=1000):
        fields = [f.decode() for f in graph.redis.hkeys(key) if not f.startswith(b"!")]
        if fields and all(f.split(":", 1)[0] in graph.rules.anonymous_types for f in fields):
            out.add(key.decode()[len(graph.base) + 2 :])
    return out


def test_an_idle_anonymous_profile_is_collected_and_nothing_else(graph, redis_client):
    now = 400 * DAY
    [idle] = seen(graph, ev("m1", now - 100 * DAY, ("anonymous_id", "idle"))).oneids
    [device] = seen(graph, ev("m2", now - 95 * DAY, ("device_id", "dev-1"))).oneids
    with_email = ev("m3", now - 100 * DAY, ("anonymous_id", "k"), ("email", "k@qq.com"))
    [known] = seen(graph, with_email).oneids
    [user] = seen(graph, ev("m4", now - 100 * DAY, ("user_id", "u1"), ("anonymous_id", "u"))).oneids
    [recent] = seen(graph, ev("m5", now - 100 * DAY, ("anonymous_id", "recent"))).oneids
    seen(graph, ev("m6", now - 10 * DAY, ("anonymous_id", "recent")))  # seen again lately
    assert anonymous_set(redis_client, graph) == {idle: now - 100 * DAY, device: now - 95 * DAY,
                                                  recent: now - 10 * DAY}
    collected = graph.collect_idle_anonymous(now, 90 * DAY)
    assert sorted(collected) == sorted([idle, device])
    assert graph.lookup("anonymous_id", "idle") is None and graph.lookup("device_id", "dev-1") is None
    assert not redis_client.exists(graph.profile_key(idle))
    kept = {known: ("email", "k@qq.com"), user: ("user_id", "u1"), recent: ("anonymous_id", "recent")}
    for oneid, (type_, value) in kept.items():
        assert graph.lookup(type_, value) == oneid
    # not an erasure: nothing suppressed, nothing audited; counted
    assert not redis_client.exists(graph.suppression_key) and graph.audit_log() == []
    assert graph.collected_total() == 2
    assert graph.collect_idle_anonymous(now, 90 * DAY) == []
    # the anonymous id comes back: a fresh profile, with only the new event in it
    back = seen(graph, ev("m7", now + 1, ("anonymous_id", "idle")))
    assert back.oneids[0] is not None and back.rejections == []
    [edge] = graph.edges(back.oneids[0])
    assert edge.event.message_id == "m7"
    assert anonymous_set(redis_client, graph)[back.oneids[0]] == now + 1


def test_history_arriving_now_is_not_idle(graph, redis_client):
    """Idle is judged by arrival: a year-old event imported today starts a year-old profile that
    lives a full idle period from today."""
    now = int(time.time() * 1000)
    [imported] = graph.resolve_batch([ev("m1", now - 400 * DAY, ("anonymous_id", "imported"))]).oneids
    assert now <= anonymous_set(redis_client, graph)[imported] <= int(time.time() * 1000)
    assert graph.collect_idle_anonymous(int(time.time() * 1000), 90 * DAY) == []
    assert graph.lookup("anonymous_id", "imported") == imported
    assert graph.collect_idle_anonymous(int(time.time() * 1000) + 91 * DAY, 90 * DAY) == [imported]


def test_linking_a_stronger_identifier_leaves_the_set_for_good(graph, redis_client):
    [a] = seen(graph, ev("m1", 1000, ("anonymous_id", "a1"))).oneids
    assert a in anonymous_set(redis_client, graph)
    seen(graph, ev("m2", 2000, ("anonymous_id", "a1"), ("email", "x@qq.com")))
    assert anonymous_set(redis_client, graph) == {}
    seen(graph, ev("m3", 3000, ("anonymous_id", "a1")))  # anonymous traffic does not put it back
    assert anonymous_set(redis_client, graph) == {}
    assert graph.collect_idle_anonymous(10**13, 0) == []


def test_merges_and_deletes_keep_the_set_right(graph, redis_client):
    [a] = seen(graph, ev("m1", 1000, ("anonymous_id", "a1"))).oneids
    [d] = seen(graph, ev("m2", 5000, ("device_id", "d1"))).oneids
    merged = seen(graph, ev("m3", 3000, ("device_id", "d1"), ("anonymous_id", "a1")))
    [m] = merged.merges
    assert (m["survivor"], m["merged"]) == (a, d)
    assert anonymous_set(redis_client, graph) == {a: 5000}  # the later last-seen of the two
    # collecting the survivor removes the alias of the merged one too
    assert graph.collect_idle_anonymous(10_000, 1000) == [a]
    assert graph.resolve_alias(d) == d and graph.lookup("device_id", "d1") is None
    [b] = seen(graph, ev("m4", 1000, ("anonymous_id", "b1"))).oneids
    graph.delete_profile(b, actor="dpo")
    assert anonymous_set(redis_client, graph) == {}


def test_collection_takes_the_oldest_first_up_to_the_limit(graph, redis_client):
    oneids = [seen(graph, ev(f"m{i}", 1000 + i, ("anonymous_id", f"a{i}"))).oneids[0]
              for i in range(5)]
    assert graph.collect_idle_anonymous(10_000, 0, limit=2) == oneids[:2]
    assert graph.collect_idle_anonymous(10_000, 0, limit=0) == []
    assert graph.collect_idle_anonymous(10_000, 0, limit=500) == oneids[2:]
    assert graph.collected_total() == 5
    with pytest.raises(ValueError):
        graph.collect_idle_anonymous(10_000, -1)


def test_a_split_off_anonymous_part_becomes_collectable(graph, redis_client):
    seen(graph, ev("m1", 1000, ("user_id", "u1")))
    seen(graph, ev("m2", 2000, ("anonymous_id", "a2")))
    seen(graph, ev("m3", 3000, ("anonymous_id", "a2"), ("device_id", "d2")))
    seen(graph, ev("bad", 4000, ("user_id", "u1"), ("anonymous_id", "a2")))
    assert anonymous_set(redis_client, graph) == {}
    split = graph.unmerge(oneid_of("user_id", "u1"), "anonymous_id", "a2", actor="ops")
    assert set(anonymous_set(redis_client, graph)) == {split.new_oneid}


def test_the_set_tracks_exactly_the_anonymous_profiles_of_a_busy_graph(graph, redis_client):
    events, _ = generate(60, seed=11)
    # every third event loses its stronger identifiers: anonymous profiles that are created,
    # merged, moved between, and later linked to people
    for event in events[::3]:
        event["identifiers"] = [i for i in event["identifiers"] if i["type"] in graph.rules.anonymous_types]
    for i in range(0, len(events), 250):
        graph.resolve_batch(events[i : i + 250])
    tracked = set(anonymous_set(redis_client, graph))
    assert tracked and tracked == anonymous_only(graph)
    # frequency-guard splices and moves included: collecting everything leaves a consistent graph
    collected = graph.collect_idle_anonymous(10**13, 0, limit=10_000)
    assert set(collected) == tracked and anonymous_only(graph) == set()


def test_profiles_from_before_the_set_can_be_backfilled(graph, redis_client):
    [old] = seen(graph, ev("m1", 1000, ("anonymous_id", "old"))).oneids
    [known] = seen(graph, ev("m2", 1000, ("anonymous_id", "k"), ("user_id", "u1"))).oneids
    redis_client.delete(graph.anonymous_key)  # as a graph written by the previous release
    assert graph.backfill_anonymous(now_ms=50_000) == 1
    assert anonymous_set(redis_client, graph) == {old: 50_000}
    assert graph.backfill_anonymous(now_ms=60_000) == 0  # already there: unchanged
    assert graph.collect_idle_anonymous(60_000, 20_000) == []
    assert graph.collect_idle_anonymous(80_000, 20_000) == [old]
    assert graph.lookup("user_id", "u1") == known
