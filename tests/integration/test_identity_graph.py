"""The OneID graph on the real Redis: every rule of the issue, one scenario each."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import pytest
import redis

from identity.exceptions import GraphStateError, NotLinkedError, ProfileNotFoundError, UnmergeError
from identity.graph import IdentityGraph
from identity.rules import load_rules, parse_rules
from identity.synthetic import generate
from tests.conftest import TEST_PSEUDONYMS, TEST_SECRET

DAY = 86_400_000


def ev(message_id: str, ts: int, *ids: tuple[str, str], **provenance: int) -> dict:
    return {
        "message_id": message_id,
        "timestamp": ts,
        "identifiers": [{"type": t, "value": v} for t, v in ids],
        **provenance,
    }


def oneid_of(type_: str, value: str, n: int = 0) -> str:
    """graph_lib.lua new_id: 16 hex of sha1 of the identifier's pseudonym (#n: the n-th probe)."""
    seed = TEST_PSEUDONYMS.of(type_, value)
    return "o_" + hashlib.sha1((seed if n == 0 else f"{seed}#{n}").encode()).hexdigest()[:16]


@pytest.fixture()
def prefix(settings) -> str:
    return f"{settings.redis_prefix}idg:{uuid.uuid4().hex[:8]}:"


@pytest.fixture()
def graph(redis_client: redis.Redis, prefix: str) -> IdentityGraph:
    graph = IdentityGraph(redis_client, prefix, load_rules(), pseudonyms=TEST_PSEUDONYMS)
    yield graph
    assert graph.check_consistency() == []


def test_a_new_identifier_gets_a_deterministic_oneid(graph, redis_client, settings):
    result = graph.resolve_batch([ev("m1", 1000, ("user_id", "u1"), ("email", "a@qq.com"))])
    oneid = result.oneids[0]
    assert oneid == oneid_of("user_id", "u1")
    assert graph.lookup("user_id", "u1") == oneid
    assert graph.lookup("email", "a@qq.com") == oneid
    assert graph.lookup("email", "b@qq.com") is None
    assert graph.profile_identifiers(oneid) == {"email": ["a@qq.com"], "user_id": ["u1"]}
    assert result.merges == [] and result.rejections == [] and result.moves == []
    # another graph (another store) given the same event agrees
    other_prefix = f"{settings.redis_prefix}idg-other:{uuid.uuid4().hex[:6]}:"
    other = IdentityGraph(redis_client, other_prefix, load_rules(), pseudonyms=TEST_PSEUDONYMS)
    assert other.resolve_batch([ev("m1", 1000, ("user_id", "u1"))]).oneids == [oneid]


def test_every_link_is_an_edge_with_its_event_and_anchor(graph):
    graph.resolve_batch([ev("m1", 1000, ("anonymous_id", "a1"), partition=2, offset=41)])
    second = ev("m2", 2000, ("anonymous_id", "a1"), ("email", "x@qq.com"), partition=0, offset=7)
    graph.resolve_batch([second])
    edges = {(e.type, e.value): e for e in graph.edges(graph.lookup("anonymous_id", "a1"))}
    root = edges[("anonymous_id", "a1")]
    assert root.anchor is None and root.event.message_id == "m1"
    assert (root.event.partition, root.event.offset) == (2, 41)
    email = edges[("email", "x@qq.com")]
    assert email.anchor == ("anonymous_id", "a1")
    assert (email.event.message_id, email.event.timestamp, email.event.offset) == ("m2", 2000, 7)


def test_message_ids_come_back_as_they_were_sent(graph):
    ids = ["0f8fad5b-d9cb-469f-a165-70867728950e", "0F8FAD5B-D9CB-469F-A165-70867728950F", "s", "x" * 100]
    batch = [ev(m, 1000 + i, ("user_id", "u1"), ("anonymous_id", f"a{i}")) for i, m in enumerate(ids)]
    graph.resolve_batch(batch)
    edges = {e.value: e.event.message_id for e in graph.edges(graph.lookup("user_id", "u1"))}
    assert [edges[f"a{i}"] for i in range(len(ids))] == ids


def test_profile_hashes_stay_compact(graph, redis_client):
    events, _ = generate(60, seed=9)
    for i in range(0, len(events), 300):
        graph.resolve_batch(events[i : i + 300])
    longest = 0
    for key in redis_client.scan_iter(match=graph.base + "p:*", count=1000):
        for field, value in redis_client.hgetall(key).items():
            if b"@" not in field:  # an e-mail address may itself be long; everything else is ours
                longest = max(longest, len(field), len(value))
    # Redis keeps a hash in its compact listpack encoding while fields and values are <= 64 bytes
    assert 0 < longest <= 64


def test_a_merge_keeps_the_oldest_profile_and_aliases_the_other(graph):
    # the younger profile is created first: age is event time, not arrival order
    [user] = graph.resolve_batch([ev("m1", 5000, ("user_id", "u1"))]).oneids
    [anon] = graph.resolve_batch([ev("m2", 1000, ("anonymous_id", "a1"))]).oneids
    assert user != anon
    result = graph.resolve_batch([ev("m3", 6000, ("anonymous_id", "a1"), ("user_id", "u1"))])
    assert result.oneids == [anon]
    assert result.merges == [
        {
            "survivor": anon,
            "merged": user,
            "message_id": "m3",
            "timestamp": 6000,
            "identifiers": [{"type": "user_id", "value": "u1"}],
            "reason": "shared:anonymous_id",
        }
    ]
    assert graph.resolve_alias(user) == anon
    assert graph.resolve_alias(anon) == anon
    assert graph.resolve_aliases([user, anon]) == {user: anon, anon: anon}
    assert graph.lookup("user_id", "u1") == anon
    assert graph.profile_identifiers(user) == {"anonymous_id": ["a1"], "user_id": ["u1"]}
    # an alias of an alias answers the final survivor
    [older] = graph.resolve_batch([ev("m4", 10, ("device_id", "d1"))]).oneids
    graph.resolve_batch([ev("m5", 7000, ("device_id", "d1"), ("anonymous_id", "a1"))])
    assert graph.resolve_alias(user) == older and graph.resolve_alias(anon) == older


def test_events_of_a_batch_answer_the_survivor_of_merges_later_in_it(graph):
    result = graph.resolve_batch(
        [
            ev("m1", 1000, ("anonymous_id", "a1")),
            ev("m2", 2000, ("user_id", "u1")),
            ev("m3", 3000, ("anonymous_id", "a1"), ("user_id", "u1")),
        ]
    )
    assert result.oneids == [oneid_of("anonymous_id", "a1")] * 3
    assert len(result.merges) == 1


def test_two_identified_people_are_never_merged(graph):
    [p1] = graph.resolve_batch([ev("m1", 1000, ("user_id", "u1"), ("email", "shared@qq.com"))]).oneids
    [p2] = graph.resolve_batch([ev("m2", 2000, ("user_id", "u2"))]).oneids
    result = graph.resolve_batch([ev("m3", 3000, ("user_id", "u2"), ("email", "shared@qq.com"))])
    assert result.oneids == [p2]
    assert result.merges == []
    assert result.rejections == [
        {
            "oneid": p2,
            "type": "email",
            "value_hash": hmac.new(TEST_SECRET, b"email:shared@qq.com", hashlib.sha256).hexdigest(),
            "reason": "limit:user_id",
            "message_id": "m3",
            "timestamp": 3000,
        }
    ]
    assert "shared@qq.com" not in json.dumps(result.rejections)
    assert graph.lookup("email", "shared@qq.com") == p1
    # a new user id on an event whose email belongs to someone else gets its own profile
    result = graph.resolve_batch([ev("m4", 4000, ("user_id", "u3"), ("email", "shared@qq.com"))])
    assert result.oneids == [oneid_of("user_id", "u3")]
    assert [r["reason"] for r in result.rejections] == ["limit:user_id"]
    assert graph.profile_identifiers(result.oneids[0]) == {"user_id": ["u3"]}


def test_windowed_limits_count_links_inside_the_window_only(redis_client, prefix):
    data = {
        "priority": ["user_id", "email"],
        "types": {"user_id": {"max": 1}, "email": {"max": 2, "window_days": 10}},
    }
    graph = IdentityGraph(redis_client, prefix, parse_rules(data), pseudonyms=TEST_PSEUDONYMS)
    graph.resolve_batch([ev("m1", 0, ("user_id", "u1"), ("email", "e1@qq.com"))])
    graph.resolve_batch([ev("m2", 1 * DAY, ("user_id", "u1"), ("email", "e2@qq.com"))])
    third = graph.resolve_batch([ev("m3", 2 * DAY, ("user_id", "u1"), ("email", "e3@qq.com"))])
    assert [r["reason"] for r in third.rejections] == ["limit:email"]
    assert graph.lookup("email", "e3@qq.com") is None
    later = graph.resolve_batch([ev("m4", 11 * DAY, ("user_id", "u1"), ("email", "e3@qq.com"))])
    assert later.rejections == []
    assert graph.lookup("email", "e3@qq.com") == later.oneids[0]
    # merging two profiles whose emails together break the limit is refused too
    graph.resolve_batch([ev("m5", 11 * DAY, ("email", "e4@qq.com"), ("email", "e5@qq.com"))])
    merge = graph.resolve_batch([ev("m6", 12 * DAY, ("user_id", "u1"), ("email", "e4@qq.com"))])
    assert merge.merges == [] and [r["reason"] for r in merge.rejections] == ["limit:email"]
    assert graph.check_consistency() == []


def test_shared_family_device_follows_the_latest_login(graph):
    [p1] = graph.resolve_batch([ev("m1", 1000, ("user_id", "u1"), ("device_id", "tablet"))]).oneids
    assert graph.resolve_batch([ev("m2", 2000, ("device_id", "tablet"))]).oneids == [p1]
    # the second person logs in for the first time on the same tablet
    result = graph.resolve_batch([ev("m3", 3000, ("user_id", "u2"), ("device_id", "tablet"))])
    [p2] = result.oneids
    assert p2 == oneid_of("user_id", "u2") and p2 != p1
    assert result.merges == []
    assert result.moves == [
        {
            "type": "device_id",
            "value_hash": TEST_PSEUDONYMS.of("device_id", "tablet"),
            "from_oneid": p1,
            "to_oneid": p2,
            "message_id": "m3",
            "timestamp": 3000,
        }
    ]
    assert graph.resolve_batch([ev("m4", 4000, ("device_id", "tablet"))]).oneids == [p2]
    assert graph.profile_identifiers(p1) == {"user_id": ["u1"]}
    # the first person logs in again: the tablet goes back
    back = graph.resolve_batch([ev("m5", 5000, ("user_id", "u1"), ("device_id", "tablet"))])
    assert back.oneids == [p1] and len(back.moves) == 1
    assert graph.resolve_batch([ev("m6", 6000, ("device_id", "tablet"))]).oneids == [p1]
    # a late copy of the older login does not move it again
    stale = graph.resolve_batch([ev("m3", 3000, ("user_id", "u2"), ("device_id", "tablet"))])
    assert stale.moves == [] and [r["reason"] for r in stale.rejections] == ["newer_link"]
    assert graph.lookup("device_id", "tablet") == p1
    edge = {(e.type, e.value): e for e in graph.edges(p1)}[("device_id", "tablet")]
    assert edge.event.message_id == "m5" and edge.anchor == ("user_id", "u1")
    # anonymous traffic tying two people's devices together re-points nothing: only logins do
    graph.resolve_batch([ev("m7", 7000, ("user_id", "u2"), ("anonymous_id", "browser-2"))])
    odd = graph.resolve_batch([ev("m8", 8000, ("device_id", "tablet"), ("anonymous_id", "browser-2"))])
    assert odd.oneids == [p1] and odd.moves == [] and odd.merges == []
    assert [r["reason"] for r in odd.rejections] == ["limit:user_id"]
    assert graph.lookup("anonymous_id", "browser-2") == graph.lookup("user_id", "u2")


def test_a_shared_device_ends_with_the_latest_login_whatever_the_arrival_order(graph):
    tablet = (("device_id", "tablet"), ("anonymous_id", "tablet-app"))
    hour = 3_600_000
    # partitions deliver late: anonymous use at 5h arrives first, then the logged-in events
    graph.resolve_batch([ev("m5", 5 * hour, *tablet)])
    graph.resolve_batch([ev("m1", 1 * hour, ("user_id", "u1"), *tablet)])
    graph.resolve_batch([ev("m4", 4 * hour, ("user_id", "u1"), *tablet)])
    graph.resolve_batch([ev("m2", 2 * hour, ("user_id", "u2"), *tablet)])
    graph.resolve_batch([ev("m3", 3 * hour, ("user_id", "u2"), *tablet)])
    # in time order: u1 (1h), u2 (2h, 3h), u1 again (4h): the tablet is u1's
    u1 = graph.lookup("user_id", "u1")
    assert graph.lookup("device_id", "tablet") == u1
    assert graph.lookup("anonymous_id", "tablet-app") == u1
    assert graph.profile_identifiers(graph.lookup("user_id", "u2")) == {"user_id": ["u2"]}
    # and u2's login at 6h, whenever it arrives, takes it over
    assert graph.resolve_batch([ev("m6", 6 * hour, ("user_id", "u2"), *tablet)]).moves != []
    assert graph.lookup("device_id", "tablet") == graph.lookup("user_id", "u2")


def test_moving_a_device_keeps_the_identifiers_linked_through_it(graph):
    graph.resolve_batch([ev("m1", 1000, ("user_id", "u1"), ("device_id", "d1"))])
    graph.resolve_batch([ev("m2", 2000, ("device_id", "d1"), ("anonymous_id", "app-1"))])
    [p1] = graph.resolve_batch([ev("m3", 2500, ("anonymous_id", "app-1"))]).oneids
    [p2] = graph.resolve_batch([ev("m4", 3000, ("user_id", "u2"), ("device_id", "d1"))]).oneids
    assert graph.profile_identifiers(p1) == {"anonymous_id": ["app-1"], "user_id": ["u1"]}
    edges = {(e.type, e.value): e for e in graph.edges(p1)}
    assert edges[("anonymous_id", "app-1")].anchor == ("user_id", "u1")  # spliced onto d1's parent
    assert graph.profile_identifiers(p2) == {"device_id": ["d1"], "user_id": ["u2"]}


def test_blocked_values_never_link(graph):
    result = graph.resolve_batch(
        [
            ev("m1", 1000, ("anonymous_id", "undefined")),
            ev("m2", 2000, ("user_id", "u1"), ("email", "test@test.com"), ("phone", "+8613800000000")),
            ev("m3", 3000, ("user_id", "u2"), ("email", "test@test.com")),
            ev("m4", 4000, ("loyalty_id", "L1"), ("user_id", "u2")),
        ]
    )
    u1, u2 = oneid_of("user_id", "u1"), oneid_of("user_id", "u2")
    assert result.oneids == [None, u1, u2, u2]
    reasons = [(r["message_id"], r["type"], r["reason"], r["oneid"]) for r in result.rejections]
    assert reasons == [
        ("m1", "anonymous_id", "blocked", None),
        ("m2", "email", "blocked", u1),
        ("m2", "phone", "blocked", u1),
        ("m3", "email", "blocked", u2),
        ("m4", "loyalty_id", "unknown_type", u2),
    ]
    assert graph.lookup("email", "test@test.com") is None
    assert graph.lookup("anonymous_id", "undefined") is None
    assert result.merges == []


def test_frequency_guard_stops_a_value_seen_with_too_many_people(graph):
    events = [ev(f"m{i}", 1000 * i, ("user_id", f"u{i}"), ("email", "123456@qq.com")) for i in range(1, 6)]
    results = [graph.resolve_batch([e]) for e in events]
    reasons = [[r["reason"] for r in res.rejections] for res in results]
    # u1 links it; u2 and u3 are refused by the user_id limit; with u4 it has been seen with
    # 4 > 3 people: it leaves u1's profile and links no one from then on
    assert reasons == [[], ["limit:user_id"], ["limit:user_id"], ["frequency_guard"], ["frequency_guard"]]
    assert graph.lookup("email", "123456@qq.com") is None
    assert graph.profile_identifiers(oneid_of("user_id", "u1")) == {"user_id": ["u1"]}
    alone = graph.resolve_batch([ev("m9", 9000, ("email", "123456@qq.com"))])
    assert alone.oneids == [None] and [r["reason"] for r in alone.rejections] == ["frequency_guard"]
    # replays count people once: another sighting with u2 changes nothing more
    assert graph.resolve_batch([events[1]]).oneids == [oneid_of("user_id", "u2")]


def test_a_replayed_batch_gives_the_same_oneids_and_changes_nothing(graph, redis_client, prefix):
    events, _ = generate(40, seed=5)
    batches = [events[i : i + 200] for i in range(0, len(events), 200)]
    first = [graph.resolve_batch(batch) for batch in batches]
    assert sum(len(r.merges) for r in first) > 0 and sum(len(r.moves) for r in first) > 0
    snapshot = dump(redis_client, prefix)
    final = graph.resolve_aliases({o for r in first for o in r.oneids if o})
    again = [graph.resolve_batch(batch) for batch in batches]
    assert [[final.get(o, o) if o else None for o in r.oneids] for r in first] == [r.oneids for r in again]
    assert all(r.merges == [] and r.moves == [] for r in again)
    assert dump(redis_client, prefix) == snapshot
    # the same batch twice in a row: the second run resolves identically and writes nothing
    assert graph.resolve_batch(batches[3]).oneids == graph.resolve_batch(batches[3]).oneids
    assert dump(redis_client, prefix) == snapshot


def dump(client: redis.Redis, prefix: str) -> dict:
    out = {}
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        kind = client.type(key)
        if kind == b"hash":
            out[key] = client.hgetall(key)
        elif kind == b"set":
            out[key] = client.smembers(key)
        elif kind == b"zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        else:
            out[key] = kind
    return out


def wrongly_merged(graph: IdentityGraph) -> tuple[str, str]:
    """Person A (u1, e1) and an anonymous person B (a2, e2, a3) joined by one bad event."""
    [a] = graph.resolve_batch([ev("m1", 1000, ("user_id", "u1"), ("email", "e1@qq.com"))]).oneids
    graph.resolve_batch([ev("m2", 2000, ("anonymous_id", "a2"), partition=1, offset=5)])
    graph.resolve_batch([ev("m3", 3000, ("anonymous_id", "a2"), ("email", "e2@qq.com"))])
    [b] = graph.resolve_batch([ev("m4", 3500, ("email", "e2@qq.com"), ("anonymous_id", "a3"))]).oneids
    bad = graph.resolve_batch([ev("bad", 4000, ("user_id", "u1"), ("anonymous_id", "a2"))])
    assert len(bad.merges) == 1 and bad.merges[0]["survivor"] == a and bad.merges[0]["merged"] == b
    return a, b


def test_unmerge_splits_a_wrong_link_with_what_came_through_it(graph, redis_client):
    a, b = wrongly_merged(graph)
    result = graph.unmerge(b, "anonymous_id", "a2", actor="ops@shop")  # an alias works
    assert result.oneid == a
    # a2 created b, now an alias: an id once used is never reused, the next one is probed
    assert b == oneid_of("anonymous_id", "a2")
    assert result.new_oneid == oneid_of("anonymous_id", "a2", 1)
    assert sorted((i["type"], i["value"]) for i in result.identifiers) == [
        ("anonymous_id", "a2"), ("anonymous_id", "a3"), ("email", "e2@qq.com"),
    ]
    assert sorted(result.message_ids) == ["bad", "m3", "m4"]
    assert graph.profile_identifiers(a) == {"email": ["e1@qq.com"], "user_id": ["u1"]}
    assert graph.lookup("email", "e2@qq.com") == result.new_oneid
    [entry] = graph.audit_log()
    assert entry["action"] == "unmerge" and entry["actor"] == "ops@shop"
    assert entry["oneid"] == a and entry["new_oneid"] == result.new_oneid
    assert entry["value_hash"] == TEST_PSEUDONYMS.of("anonymous_id", "a2")
    assert int(entry["time"]) > 1_700_000_000_000
    assert "a2" not in json.dumps(entry)
    # the same bad link arriving again does not undo the operator's split
    again = graph.resolve_batch([ev("bad2", 5000, ("user_id", "u1"), ("anonymous_id", "a2"))])
    assert again.merges == [] and again.moves == []
    assert [r["reason"] for r in again.rejections] == ["unmerged"]
    assert graph.lookup("anonymous_id", "a2") == result.new_oneid


def test_an_unmerge_waits_in_the_merge_outbox_with_what_it_moved_until_acknowledged(graph):
    a, b = wrongly_merged(graph)
    graph.merges_acknowledged([m.merged for m in graph.unacknowledged_merges(0, float("inf"))])
    result = graph.unmerge(b, "anonymous_id", "a2", actor="ops@shop")
    [pending] = graph.unacknowledged_merges(0, float("inf"))  # what a crash before Kafka would leave
    assert pending == result.pending
    assert (pending.merged, pending.survivor, pending.kind) == (result.new_oneid, a, "unmerge")
    assert sorted(pending.identifiers) == ["anonymous_id:a2", "anonymous_id:a3", "email:e2@qq.com"]
    record = pending.record(123, "resent_after_crash")
    assert record["kind"] == "unmerge" and {"type": "email", "value": "e2@qq.com"} in record["identifiers"]
    assert graph.unacknowledged_merges(60, time.time()) == []  # fresh: not stale yet
    graph.merges_acknowledged([result.new_oneid])
    assert graph.unacknowledged_merges(0, float("inf")) == []


def test_unmerge_refuses_what_it_cannot_split(graph):
    a, _ = wrongly_merged(graph)
    with pytest.raises(UnmergeError):
        graph.unmerge(a, "user_id", "u1")  # everything hangs off the root
    with pytest.raises(NotLinkedError):
        graph.unmerge(a, "email", "nobody@qq.com")
    with pytest.raises(ProfileNotFoundError):
        graph.unmerge("o_0000000000000000", "user_id", "u1")


def test_delete_erases_the_profile_and_suppresses_in_flight_events(graph, redis_client, prefix):
    a, b = wrongly_merged(graph)
    before = int(time.time() * 1000) - 1
    removed = graph.delete_profile(b, actor="dpo")  # by its alias
    assert sorted((i["type"], i["value"]) for i in removed) == [
        ("anonymous_id", "a2"), ("anonymous_id", "a3"), ("email", "e1@qq.com"),
        ("email", "e2@qq.com"), ("user_id", "u1"),
    ]
    for type_, value in (("user_id", "u1"), ("email", "e2@qq.com"), ("anonymous_id", "a3")):
        assert graph.lookup(type_, value) is None
    assert graph.profile_identifiers(a) == {}
    assert graph.resolve_alias(b) == b  # the alias is gone too
    assert not redis_client.exists(graph.profile_key(a))
    stored = redis_client.hgetall(graph.suppression_key)
    assert len(stored) == 5
    assert all(b"u1" not in k and b"qq.com" not in k for k in stored)
    [entry] = graph.audit_log()
    assert (entry["action"], entry["actor"], entry["oneid"]) == ("delete", "dpo", a)
    assert (entry["identifiers"], entry["aliases"]) == ("5", "1")
    # an event already in flight (received before the deletion) recreates nothing, whatever
    # time its client wrote (a day ahead here)
    late = graph.resolve_batch([ev("m9", before + 86_400_000, ("user_id", "u1"), ("anonymous_id", "fresh"),
                                   received_at=before)])
    assert late.oneids == [None]
    assert [(r["type"], r["reason"]) for r in late.rejections] == [
        ("user_id", "suppressed"), ("anonymous_id", "suppressed"),
    ]
    assert graph.lookup("anonymous_id", "fresh") is None
    # another worker that has not deleted anything learns of the suppression from Redis
    other = IdentityGraph(redis_client, prefix, load_rules(), pseudonyms=TEST_PSEUDONYMS)
    assert other.resolve_batch([ev("m9b", 9000, ("email", "e2@qq.com"), received_at=before)]).oneids == [None]
    # unrelated traffic is unaffected; activity received after the deletion (no window here)
    # starts afresh, under a new OneID: the erased ones are never issued again
    assert graph.resolve_batch([ev("m10", 9000, ("user_id", "u9"))]).oneids == [oneid_of("user_id", "u9")]
    [again] = graph.resolve_batch([ev("m11", 9000, ("user_id", "u1"))]).oneids
    assert again not in (None, a, b) and again == oneid_of("user_id", "u1", 1)
    assert graph.tombstoned(a) is not None and graph.tombstoned(b)[1] == a
    with pytest.raises(ProfileNotFoundError):
        graph.delete_profile("o_0000000000000000", actor="dpo")


def test_suppression_is_judged_by_receipt_within_the_window(graph, redis_client):
    [gone] = graph.resolve_batch([ev("m1", 1000, ("user_id", "u1"), ("phone", "+8613912345678"))]).oneids
    erased = graph.erase(gone, "dpo", suppress_ms=3_600_000)
    assert (erased.oneid, erased.identifiers, erased.aliases) == (gone, 2, [])
    assert erased.suppressed_until == erased.erased_at + 3_600_000
    # received within the window (an SDK's offline queue flushing late), even with an old time
    inside = graph.resolve_batch([ev("m2", 500, ("phone", "+8613912345678"),
                                     received_at=erased.erased_at + 3_000_000)])
    assert inside.oneids == [None] and {r["reason"] for r in inside.rejections} == {"suppressed"}
    # received after it: a new person, never the erased OneID
    [later] = graph.resolve_batch([ev("m3", 500, ("phone", "+8613912345678"),
                                      received_at=erased.erased_at + 3_600_001)]).oneids
    assert later is not None and later != gone
    # the erasure record tells the rest of the erasure what the graph removed, without values
    record = graph.erasure_record(gone)
    assert record["aliases"] == [] and len(record["hashes"]) == 2
    assert record["steps"]["graph"]["identifiers"] == 2
    assert not any("13912345678" in h or "u1" in h.split(":")[1] for h in record["hashes"])
    # entries whose window has passed are purged; live ones stay
    assert graph.purge_suppressions() == 0
    redis_client.hset(graph.suppression_key, "phone:dead", 1)
    assert graph.purge_suppressions() == 1
    assert len(redis_client.hkeys(graph.suppression_key)) == 2


def test_a_redis_that_forgot_the_script_is_handled(graph):
    graph._resolve_script.sha = "0" * 40  # as after a restart or failover: NOSCRIPT
    assert graph.resolve_batch([ev("m1", 1000, ("user_id", "u1"))]).oneids == [oneid_of("user_id", "u1")]


def test_changing_index_buckets_of_an_existing_graph_is_refused(graph, redis_client, prefix):
    graph.resolve_batch([ev("m1", 1000, ("user_id", "u1"))])
    data = {"priority": ["user_id"], "types": {"user_id": {"max": 1}}, "storage": {"index_buckets": 7}}
    with pytest.raises(GraphStateError, match="index_buckets"):
        IdentityGraph(redis_client, prefix, parse_rules(data), pseudonyms=TEST_PSEUDONYMS).resolve_batch(
            [ev("m2", 1, ("user_id", "u2"))])


def test_empty_batches_and_events_without_identifiers(graph):
    assert graph.resolve_batch([]).oneids == []
    assert graph.resolve_batch([ev("m1", 1000)]).oneids == [None]


def test_the_consistency_check_finds_a_damaged_graph(redis_client, prefix):
    graph = IdentityGraph(redis_client, prefix, load_rules(), pseudonyms=TEST_PSEUDONYMS)
    [oneid] = graph.resolve_batch([ev("m1", 1000, ("user_id", "u1"), ("email", "a@qq.com"))]).oneids
    assert graph.check_consistency() == []
    redis_client.hset(graph.index_key("email", "ghost@qq.com"), "ghost@qq.com", "o_missing")
    redis_client.hdel(graph.profile_key(oneid), "email:a@qq.com")
    redis_client.hset(graph.profile_key(oneid), "user_id:u2", b"\x90")
    problems = graph.check_consistency()
    assert any("missing profile o_missing" in p for p in problems)
    assert any("holds 2 user_id" in p for p in problems)
    assert any("indexed to None" in p for p in problems)
    assert not any("ghost" in p or "a@qq.com" in p for p in problems)  # hashes, never values
