"""Profile state, rules and triggers on the real Redis (the project's stack)."""

from __future__ import annotations

import json
import random
import textwrap
import uuid
from typing import Any

import pytest
import redis
from prometheus_client import REGISTRY
from redis.exceptions import NoScriptError

from profiles import layout
from profiles.rules import DEFAULT_RULES_PATH, load_rules, load_rules_file
from profiles.store import TIMER_RETRY_MS, ProfileStore
from tests.unit.profiles.factory import T0, D, H, S, identify, numbered, page, track

RULES = load_rules_file(DEFAULT_RULES_PATH, strict=True)
WEEK = 7 * D


def own_prefix(settings) -> str:
    """This module's own key space: workers of the same test run write under the run prefix."""
    return f"{settings.redis_prefix}ps:"


@pytest.fixture()
def store(redis_client, settings) -> ProfileStore:
    return ProfileStore(redis_client, own_prefix(settings), RULES)


def new_id() -> str:
    return "o" + uuid.uuid4().hex[:20]


def order(ts: int, oneid: str, revenue: float, order_id: str = "o-1", **kw: Any) -> dict[str, Any]:
    return track("Order Completed", ts, oneid, properties={"revenue": revenue, "order_id": order_id}, **kw)


def consent(oneid: str, ts: int = T0 - H) -> dict[str, Any]:
    return identify({"marketing_consent": True}, ts, oneid)


def dump(client: redis.Redis, prefix: str) -> dict[bytes, Any]:
    """Every key under the prefix with its full content, to compare states."""
    out: dict[bytes, Any] = {}
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        kind = client.type(key)
        if kind == b"hash":
            out[key] = client.hgetall(key)
        elif kind == b"string":
            out[key] = client.get(key)
        elif kind == b"zset":
            out[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == b"set":
            out[key] = client.smembers(key)
    return out


def apply_in_batches(
    store: ProfileStore, events: list[dict[str, Any]], size: int, partition: int = 0, now: int = T0
) -> list[dict[str, Any]]:
    fired = []
    numbered_events = numbered(events)
    for lo in range(0, len(numbered_events), size):
        fired += store.apply_batch(partition, numbered_events[lo : lo + size], now).triggers
    return fired


# -- aggregates --------------------------------------------------------------------------------


def test_aggregates_equal_a_recount(store):
    rng = random.Random(5)
    people = [new_id() for _ in range(4)]
    events = []
    ts = T0
    for i in range(600):
        ts += rng.randint(1, 3 * H)
        who = rng.choice(people)
        roll = rng.random()
        if roll < 0.6:
            events.append(
                page(
                    rng.choice(["/", "/pricing", "/features/a", "/features/b", "/features/c", "/blog"]),
                    ts,
                    who,
                )
            )
        elif roll < 0.8:
            events.append(order(ts, who, round(rng.uniform(10, 5000), 2), order_id=f"o-{i}"))
        else:
            events.append(track("Demo Requested", ts, who))
    apply_in_batches(store, events, 37)
    for who in people:
        mine = [e for e in events if e["oneid"] == who]
        as_of = mine[-1]["timestamp"]
        got = store.get_profile(who, as_of)["aggregates"]

        def recount(kind, name, window, bucket, *, mine=mine, as_of=as_of):
            hi = as_of // bucket
            lo = hi - (-(-window // bucket)) + 1
            return [
                e
                for e in mine
                if (e["type"], e["event"] or None) == (kind, name) or (kind == "page" and e["type"] == "page")
                if lo <= e["timestamp"] // bucket <= hi
            ]

        pages = recount("page", None, 30 * D, D)
        assert got["page_views_30d"] == len(pages)
        pricing = [
            e for e in recount("page", None, 7 * D, H) if json.loads(e["properties"])["path"] == "/pricing"
        ]
        assert got["pricing_views_7d"] == len(pricing)
        orders_90 = recount("track", "Order Completed", 90 * D, D)
        assert got["orders_90d"] == len(orders_90)
        orders_365 = recount("track", "Order Completed", 365 * D, WEEK)
        assert got["revenue_365d"] == pytest.approx(
            sum(json.loads(e["properties"])["revenue"] for e in orders_365)
        )
        assert got["demo_requests_30d"] == len(recount("track", "Demo Requested", 30 * D, D))
        all_orders = [e for e in mine if e["event"] == "Order Completed"]
        assert got["first_order_at"] == all_orders[0]["timestamp"]
        assert got["last_order_id"] == json.loads(all_orders[-1]["properties"])["order_id"]
        features = {
            json.loads(e["properties"])["path"]
            for e in recount("page", None, 30 * D, D)
            if json.loads(e["properties"])["path"].startswith("/features/")
        }
        assert abs(got["features_viewed_30d"] - len(features)) <= 1


def test_buckets_outside_every_window_are_pruned(store, redis_client):
    who = new_id()
    store.apply_batch(0, numbered([page("/pricing", T0, who)]), T0)
    store.apply_batch(0, numbered([page("/", T0 + 400 * D, who)], start=1), T0)
    fields = redis_client.hkeys(store.profile_keys(who)[0])
    old_day = f":{T0 // D}".encode()
    assert not [f for f in fields if f.startswith(b"a:") and f.endswith(old_day)]
    assert store.get_profile(who)["aggregates"]["page_views_30d"] == 1


# -- effectively once --------------------------------------------------------------------------


def test_replaying_a_batch_changes_nothing(store, redis_client, settings):
    who = new_id()
    batch = numbered(
        [
            consent(who),
            page("/pricing", T0, who),
            page("/features/x", T0 + 200 * S, who),
            order(T0 + 300 * S, who, 25_000),
            track("Demo Requested", T0 + 400 * S, who),
        ]
    )
    first = store.apply_batch(3, batch, T0)
    assert first.applied == 5 and first.triggers
    before = dump(redis_client, own_prefix(settings))
    again = store.apply_batch(3, batch, T0 + H)
    assert again.triggers == [] and again.skipped_replayed == 5 and again.applied == 0
    assert dump(redis_client, own_prefix(settings)) == before
    # a partly replayed batch applies only its new tail
    tail = store.apply_batch(3, [*batch[-2:], (5, page("/", T0 + 500 * S, who))], T0)
    assert tail.skipped_replayed == 2 and tail.applied == 1


def test_a_trigger_fires_once_under_replay_and_sdk_retry(store):
    who = new_id()
    demo = track("Demo Requested", T0, who, message_id=f"demo-{who}")
    fired = store.apply_batch(0, numbered([consent(who), demo]), T0).triggers
    assert [t["rule"] for t in fired] == ["demo_requested"]
    assert store.apply_batch(0, numbered([consent(who), demo]), T0).triggers == []  # Kafka replay
    # an SDK retry with a new offset, sent after demo_requested's 1 h cooldown: the key stops it
    retry = store.apply_batch(0, [(7, dict(demo, timestamp=T0 + 2 * H, received_at=T0 + 2 * H))], T0)
    assert retry.triggers == [] and retry.duplicates == 1
    assert [t["rule"] for t in store.list_triggers(who)] == ["demo_requested"]
    # an order retried by the SDK schedules its post-purchase care once
    buy = order(T0 + H, who, 10, message_id=f"buy-{who}")
    store.apply_batch(0, [(8, buy), (9, dict(buy, timestamp=T0 + H + S))], T0)
    assert store.get_profile(who)["pending_timers"] == 2


def test_a_batch_costs_two_script_calls(redis_client, settings):
    calls = []

    class Counting:
        def __getattr__(self, name):
            return getattr(redis_client, name)

        def evalsha(self, *args):
            calls.append(args[2])
            return redis_client.evalsha(*args)

    counted = ProfileStore(Counting(), own_prefix(settings), RULES)
    events = [page(p, T0 + i * S, f"c{i % 50}") for i, p in enumerate(["/", "/pricing", "/docs"] * 100)]
    counted.apply_batch(0, numbered(events), T0)
    assert calls == ["read", "apply"]
    calls.clear()
    counted.apply_batch(0, numbered(events), T0)
    assert calls == ["read"]  # all replayed: nothing to write


def test_noscript_is_handled(redis_client, settings):
    loads = []

    class Forgetful:
        """Redis after a restart or SCRIPT FLUSH: the first EVALSHA answers NOSCRIPT."""

        failed = False

        def __getattr__(self, name):
            return getattr(redis_client, name)

        def evalsha(self, *args):
            if not self.failed:
                self.failed = True
                raise NoScriptError("NOSCRIPT No matching script.")
            return redis_client.evalsha(*args)

        def script_load(self, script):
            loads.append(script)
            return redis_client.script_load(script)

    who = new_id()
    result = ProfileStore(Forgetful(), own_prefix(settings), RULES).apply_batch(
        0, numbered([page("/", T0, who)]), T0
    )
    assert result.applied == 1 and len(loads) == 1


def test_late_events_are_counted_and_skipped(store):
    who = new_id()
    result = store.apply_batch(
        0, numbered([page("/", T0 + 3 * H, who), page("/", T0 + 2 * H + 1, who), page("/", T0, who)]), T0
    )
    assert result.skipped_late == 1 and result.applied == 3
    profile = store.get_profile(who)
    assert profile["aggregates"]["page_views_30d"] == 2 and profile["first_seen"] == T0 + 2 * H + 1


def test_marketing_triggers_need_consent(store):
    who = new_id()
    result = store.apply_batch(0, numbered([order(T0, who, 500)]), T0)  # no consent trait
    assert result.triggers == [] and result.suppressed_marketing == 1
    result = store.apply_batch(
        0,
        numbered(
            [identify({"marketing_consent": False}, T0 + S, who), order(T0 + 2 * S, who, 30_000)], start=1
        ),
        T0,
    )
    assert result.triggers == [] and result.suppressed_marketing == 1


# -- dwell ------------------------------------------------------------------------------------


def test_dwell_of_200s_closed_by_the_next_page_fires_once(store):
    who = new_id()
    opened = page("/pricing", T0, who)
    store.apply_batch(0, numbered([consent(who), opened]), T0)
    assert [t for t in store.close_expired(T0 + 100 * S) if t["oneid"] == who] == []
    fired = store.apply_batch(0, numbered([page("/docs", T0 + 200 * S, who)], start=2), T0).triggers
    assert [t["rule"] for t in fired] == ["pricing_dwell"]
    assert fired[0]["message_id"] == opened["message_id"] and json.loads(fired[0]["values"])["dwell_s"] == 200
    assert fired[0]["event_time"] == T0 + 180 * S + 1
    # (other tests' open views share this store's partitions: only this person's count here)
    assert [t for t in store.close_expired(T0 + 10 * 60 * S) if t["oneid"] == who] == []
    assert store.apply_batch(0, numbered([page("/docs", T0 + 200 * S, who)], start=2), T0).triggers == []
    assert [t["rule"] for t in store.list_triggers(who)] == ["pricing_dwell"]


def test_reloads_of_pricing_inside_the_window_fire_once(store):
    who = new_id()
    events = [consent(who)] + [page("/pricing", T0 + t * S, who) for t in (0, 50, 100, 150, 190, 240, 420)]
    fired = apply_in_batches(store, events, 2)
    fired += store.close_expired(T0 + 3600 * S)
    dwell = [t for t in fired if t["rule"] == "pricing_dwell"]
    assert len(dwell) == 1 and dwell[0]["message_id"] == events[1]["message_id"]
    assert dwell[0]["event_time"] == T0 + 180 * S + 1


def test_an_open_view_190s_old_fires_from_close_expired_and_not_again(store):
    who = new_id()
    store.apply_batch(1, numbered([consent(who), page("/pricing", T0, who)]), T0)
    assert store.close_expired(T0 + 170 * S, partitions=[1]) == []
    fired = store.close_expired(T0 + 190 * S, partitions=[1])
    assert [t["rule"] for t in fired] == ["pricing_dwell"] and fired[0]["fired_at"] == T0 + 190 * S
    assert store.close_expired(T0 + 195 * S) == []
    later = store.apply_batch(1, numbered([page("/docs", T0 + 300 * S, who)], start=2), T0)
    assert later.triggers == []
    assert store.get_profile(who)["open_views"] == 0


def test_page_left_closes_and_heartbeat_measures(store):
    left, beating = new_id(), new_id()
    store.apply_batch(
        0,
        numbered(
            [
                consent(left),
                page("/pricing", T0, left),
                track("Page Left", T0 + 181 * S, left),
                consent(beating),
                page("/pricing", T0, beating),
                track("Heartbeat", T0 + 100 * S, beating),
            ]
        ),
        T0,
    )
    assert store.get_profile(left)["open_views"] == 0
    assert store.get_profile(beating)["open_views"] == 1
    fired = store.apply_batch(0, numbered([track("Heartbeat", T0 + 185 * S, beating)], start=6), T0).triggers
    assert [t["oneid"] for t in fired] == [beating]
    assert [t["rule"] for t in store.list_triggers(left)] == ["pricing_dwell"]


# -- timers -------------------------------------------------------------------------------------


def test_post_purchase_care_and_inactivity_downgrade(store):
    who = new_id()
    store.apply_batch(2, numbered([consent(who), order(T0, who, 150_000)]), T0)
    assert store.get_profile(who)["tier"] == "A"
    assert store.close_expired(T0 + 7 * D - S, partitions=[2]) == []
    seven = store.close_expired(T0 + 7 * D + S, partitions=[2])
    assert [t["rule"] for t in seven] == ["post_purchase_7d"] and seven[0]["event_time"] == T0 + 7 * D
    assert json.loads(seven[0]["values"]) == {"order_id": "o-1"}
    assert [t["rule"] for t in store.close_expired(T0 + 30 * D + S, partitions=[2])] == ["post_purchase_30d"]
    assert store.get_profile(who)["pending_timers"] == 0
    down = store.close_expired(T0 + 90 * D + S, partitions=[2])
    assert [(t["rule"], json.loads(t["values"])["to"]) for t in down] == [("tier_downgraded", "B")]
    assert store.get_profile(who, T0 + 90 * D + S)["tier"] == "B"
    assert store.close_expired(T0 + 200 * D) == []
    back = store.apply_batch(2, numbered([page("/", T0 + 100 * D, who)], start=2), T0)
    assert [(t["rule"], json.loads(t["values"])["to"]) for t in back.triggers] == [("tier_upgraded", "A")]


def test_stale_timers_are_dropped_not_fired(store):
    who = new_id()
    store.apply_batch(0, numbered([consent(who), order(T0, who, 10)]), T0)
    result = store.close_expired_result(T0 + 60 * D)
    assert result.triggers == [] and result.stale_timers == 2
    assert store.close_expired(T0 + 61 * D) == []


# -- merge, delete, read --------------------------------------------------------------------------


def test_merge_combines_two_profiles(store, redis_client):
    a, b = new_id(), new_id()
    store.apply_batch(
        0,
        numbered(
            [
                identify({"plan": "free", "company": "Acme"}, T0, a),
                page("/pricing", T0 + S, a),
                page("/features/sso", T0 + 2 * S, a),
            ]
        ),
        T0,
    )
    b_order = order(T0 + 3 * S, b, 30_000)
    b_demo = track("Demo Requested", T0 + 5 * S, b)
    store.apply_batch(
        1,
        numbered(
            [
                identify({"plan": "pro", "marketing_consent": True}, T0 + H, b),
                page("/pricing", T0 + 4 * S, b),
                b_order,
                b_demo,
            ]
        ),
        T0,
    )
    assert [t["rule"] for t in store.list_triggers(b)] == ["demo_requested", "tier_upgraded"]
    outcome = store.merge_profiles(a, b)
    assert outcome["survivor"] == a and outcome["fields_moved"] > 0
    merged = store.get_profile(a)
    assert merged["traits"]["plan"] == "pro" and merged["traits"]["company"] == "Acme"
    assert merged["aggregates"]["page_views_30d"] == 3
    assert merged["aggregates"]["pricing_views_7d"] == 2  # same hour bucket: summed
    assert merged["aggregates"]["revenue_365d"] == 30_000
    assert merged["aggregates"]["demo_requests_30d"] == 1
    assert merged["first_seen"] == T0 and merged["last_seen"] == T0 + H
    assert {"interested_in_sso", "high_intent"} <= set(merged["tags"]) and merged["tier"] == "B"
    assert [t["rule"] for t in store.list_triggers(a)] == ["demo_requested", "tier_upgraded"]
    assert store.get_profile(b)["oneid"] == a  # reads follow the redirect
    for key in store.profile_keys(b)[:3]:
        assert not redis_client.exists(key)
    # the merged OneID's batch replayed: redirected, skipped by offset, its trigger not fired again
    replay = store.apply_batch(1, numbered([b_order], start=2), T0)
    assert replay.triggers == [] and replay.skipped_replayed == 1
    # an SDK retry of b's demo request (a new offset, after the 1 h cooldown): the survivor kept
    # b's idempotency key
    retry = store.apply_batch(1, [(9, dict(b_demo, timestamp=T0 + 2 * H, received_at=T0 + 2 * H))], T0)
    assert "demo_requested" not in [t["rule"] for t in retry.triggers] and retry.duplicates == 1
    # a new event still stamped with the merged OneID lands on the survivor
    store.apply_batch(1, numbered([page("/", T0 + 2 * H, b)], start=10), T0)
    assert store.get_profile(a)["aggregates"]["page_views_30d"] == 4


def test_merge_moves_open_views_and_timers(store):
    a, b = new_id(), new_id()
    store.apply_batch(0, numbered([consent(a), page("/", T0, a)]), T0)
    store.apply_batch(
        0,
        numbered([consent(b), page("/pricing", T0, b, anonymous_id="anon-b"), order(T0 + S, b, 10)], start=2),
        T0,
    )
    store.merge_profiles(a, b)
    survivor = store.get_profile(a)
    assert survivor["open_views"] == 1 and survivor["pending_timers"] == 2
    fired = store.close_expired(T0 + 200 * S)
    assert [(t["rule"], t["oneid"]) for t in fired] == [("pricing_dwell", a)]


def test_merge_many_folds_a_chain_in_order_and_a_repeat_changes_nothing(store, redis_client):
    a, b, c = new_id(), new_id(), new_id()
    for i, oneid in enumerate((a, b, c)):
        store.apply_batch(0, numbered([page("/", T0 + i * S, oneid), page("/docs", T0 + H + i * S, oneid)],
                                      start=10 * i), T0)
    outcomes = store.merge_many([(b, c), (a, b)])  # c into b, then b (holding c) into a
    assert [(o["survivor"], o["merged"]) for o in outcomes] == [(b, c), (a, b)]
    assert store.get_profile(a)["aggregates"]["page_views_30d"] == 6
    for gone in (b, c):
        assert store.get_profile(gone)["oneid"] == a  # reads follow the redirects
    assert store.merge_many([(b, c), (a, b)])  # replayed after a crash: idempotent
    assert store.get_profile(a)["aggregates"]["page_views_30d"] == 6
    assert store.merge_many([]) == []


def test_delete_removes_every_key(store, redis_client, settings):
    keep, gone, old = new_id(), new_id(), new_id()
    store.apply_batch(0, numbered([consent(keep), page("/pricing", T0, keep)]), T0)
    store.apply_batch(
        0,
        numbered(
            [
                consent(gone),
                page("/pricing", T0, gone),
                order(T0 + S, gone, 150_000),
                consent(old),
                page("/", T0, old),
            ],
            start=2,
        ),
        T0,
    )
    store.merge_profiles(gone, old)
    before = set(dump(redis_client, own_prefix(settings)))
    assert store.delete_profile(gone) >= 4
    after = dump(redis_client, own_prefix(settings))
    assert not [k for k in after if gone.encode() in k or old.encode() in k]
    for members in (v for k, v in after.items() if b"pdue:" in k):
        assert not [m for m, _ in members if gone.encode() in m]
    assert store.get_profile(gone) is None and store.list_triggers(gone) == []
    assert store.get_profile(keep) is not None
    assert {k for k in before if keep.encode() in k} <= set(after)


def test_list_triggers_is_newest_first_and_bounded(redis_client, settings):
    rules = load_rules(
        textwrap.dedent("""
        options: {trigger_history: 3}
        triggers:
          ping: {on: "track:Ping", marketing: false}
    """),
        strict=True,
    )
    store = ProfileStore(redis_client, own_prefix(settings), rules)
    who = new_id()
    pings = [track("Ping", T0 + i * S, who) for i in range(5)]
    assert len(store.apply_batch(0, numbered(pings), T0).triggers) == 5
    listed = store.list_triggers(who)
    assert [t["message_id"] for t in listed] == [p["message_id"] for p in reversed(pings[-3:])]
    assert store.list_triggers(who, limit=1)[0]["message_id"] == pings[-1]["message_id"]


def test_bytes_per_profile_within_budget(store, redis_client):
    """A typical known lead: identify with firmographics, a dozen page views over three days
    (pricing, a feature page, blog), a whitepaper download, one trigger fired."""
    who = "01JD8ZK3XQ7V9YH2M4N6P8R0TW"  # a ULID-sized OneID
    traits = {
        "email": "li.wei@example.com.cn",
        "name": "李伟",
        "company": "杭州某某科技有限公司",
        "employees": 120,
        "industry": "retail",
        "title": "Marketing Manager",
        "marketing_consent": True,
    }
    paths = [
        "/",
        "/blog/cdp-guide",
        "/features/segments",
        "/pricing",
        "/customers",
        "/",
        "/blog/rfm",
        "/docs/start",
        "/pricing",
        "/about",
        "/contact",
        "/",
    ]
    events = [identify(traits, T0, who)]
    events += [
        page(p, T0 + (i // 4) * D + (i % 4) * 60 * S, who, anonymous_id=str(uuid.uuid4()))
        for i, p in enumerate(paths)
    ]
    events.append(track("Whitepaper Downloaded", T0 + 2 * D + 10 * 60 * S, who))
    store.apply_batch(0, numbered(events), T0 + 3 * D)
    store.close_expired(T0 + 3 * D)
    usage = store.memory_usage(who)
    total = sum(usage.values())
    print(f"typical profile: {total} bytes {usage}")  # reported by `pytest -s`
    assert len(store.list_triggers(who)) >= 1
    assert redis_client.object("encoding", store.profile_keys(who)[0]) == b"listpack"
    assert total <= 1024



def test_offset_guards_stay_per_stamped_oneid_across_a_merge(store):
    """A merge must not fold the merged profile's offsets into the survivor's: each stamped
    OneID's events are in offset order, the two together are not."""
    survivor, merged = new_id(), new_id()
    store.apply_batch(0, [(50, page("/", T0, survivor))], T0)
    store.apply_batch(0, [(100, page("/", T0 + S, merged))], T0)
    store.merge_profiles(survivor, merged)
    # the survivor's own next event sits below the merged profile's last offset: it still counts
    result = store.apply_batch(0, [(60, page("/a", T0 + 2 * S, survivor))], T0)
    assert result.applied == 1 and result.skipped_replayed == 0
    # the merged profile's events, redirected, are still guarded by its own watermark
    redirected = [(100, page("/", T0 + S, merged)), (101, page("/b", T0 + 3 * S, merged))]
    result = store.apply_batch(0, redirected, T0)
    assert result.skipped_replayed == 1 and result.applied == 1
    assert store.get_profile(survivor)["aggregates"]["page_views_30d"] == 4


# -- hostile input -----------------------------------------------------------------------------


def test_a_batch_touching_more_than_10000_fields_succeeds(redis_client, settings):
    """Lua's unpack fails past ~8,000 values: every variadic call in state.lua is chunked."""
    store = ProfileStore(redis_client, own_prefix(settings), RULES, max_traits_per_profile=20_000)
    who = new_id()
    batch = [identify({f"k{m}_{i}": i for i in range(200)}, T0 + m * S, who) for m in range(60)]
    first = store.apply_batch(0, numbered(batch), T0)  # 12,000 new fields: HMGET, HSET
    assert first.applied == 60 and first.traits_dropped == 0
    again = [identify({f"k{m}_{i}": -i for i in range(200)}, T0 + H + m * S, who) for m in range(60)]
    assert store.apply_batch(0, numbered(again, start=60), T0).applied == 60  # reads 12,000 fields
    profile = store.get_profile(who)
    assert len(profile["traits"]) == 12_000 and profile["traits"]["k59_199"] == -199
    other = new_id()
    store.apply_batch(0, numbered([page("/", T0, other)], start=120), T0)
    assert store.merge_profiles(other, who)["fields_moved"] > 12_000
    assert len(store.get_profile(other)["traits"]) == 12_000
    assert store.delete_profile(other) >= 1 and store.get_profile(other) is None


def test_traits_per_profile_are_capped_and_counted(redis_client, settings):
    from touchstream import metrics

    store = ProfileStore(redis_client, own_prefix(settings), RULES, max_traits_per_profile=10)
    who = new_id()
    before = metrics.PROFILE_TRAITS_DROPPED._value.get()
    first = store.apply_batch(0, numbered([identify({f"t{i}": i for i in range(15)}, T0, who)]), T0)
    assert first.traits_dropped == 5
    second = store.apply_batch(0, [(1, identify({"t0": "updated", "new": 1}, T0 + S, who))], T0)
    assert second.traits_dropped == 1
    traits = store.get_profile(who)["traits"]
    assert len(traits) == 10 and traits["t0"] == "updated" and "new" not in traits
    assert metrics.PROFILE_TRAITS_DROPPED._value.get() - before == 6
    assert store.stats["traits_dropped"] == 6


def test_hostile_values_neither_fail_the_batch_nor_poison_state(store, redis_client):
    who = new_id()
    hostile = [
        order(T0, who, 1_000),
        dict(order(T0 + S, who, 0), properties='{"revenue": NaN}'),
        dict(order(T0 + 2 * S, who, 0), properties='{"revenue": 1e999}'),
        dict(order(T0 + 3 * S, who, 0), properties='{"revenue": "Infinity", "order_id": "\\ud800"}'),
        dict(page("/", T0 + 4 * S, who), properties='{"url": "http://["}'),
        dict(identify({}, T0 + 5 * S, who), traits='{"\\udc00name": "\\ud800"}'),
        dict(identify({}, T0 + 5 * S, who), traits='{"deep": ' + "[" * 3000 + "]" * 3000 + "}"),
        dict(track("Ping", T0 + 6 * S, who), timestamp=-5),
    ]
    result = store.apply_batch(0, numbered(hostile), T0)
    assert result.applied == 7 and result.skipped_invalid == 1
    profile = store.get_profile(who)
    assert profile["aggregates"]["revenue_365d"] == 1_000 and profile["tier"] == "C"
    assert profile["traits"] == {"\ufffdname": "\ufffd"}  # too deep: that traits object is unusable
    assert profile["aggregates"]["last_order_id"] == "\ufffd"
    for key, value in redis_client.hgetall(store.profile_keys(who)[0]).items():
        assert b"inf" not in value.lower() and b"nan" not in value.lower(), key
    for trigger in store.list_triggers(who):
        json.loads(trigger["values"], parse_constant=lambda c: pytest.fail(f"{c} in trigger values"))


def test_a_future_dated_event_does_not_hold_back_the_real_ones(store):
    who = new_id()
    future = dict(track("Demo Requested", T0 + 23 * H, who), received_at=T0)
    real = [order(T0 + i * 60 * S, who, 10, order_id=f"o{i}") for i in range(1, 5)]
    result = store.apply_batch(0, numbered([consent(who), future, *real]), T0)
    assert result.skipped_late == 0
    assert store.get_profile(who)["aggregates"]["orders_90d"] == 4
    assert store.get_profile(who)["last_seen"] == T0 + 300 * S  # receipt + the 5 min skew


def test_a_profile_whose_timers_raise_is_set_aside_and_the_others_fire(store, redis_client):
    """A data error in one profile (here a corrupt hash) must not hold every timer of its
    partition: the others fire, it is counted and tried again an hour later."""
    healthy, broken = new_id(), new_id()
    for who in (healthy, broken):
        store.apply_batch(5, numbered([consent(who), page("/pricing", T0, who)]), T0)
    main = layout.profile_key(store._core.prefix, broken)
    redis_client.hset(main, layout.LAST_SEEN, "not-a-time")
    errors = REGISTRY.get_sample_value("touchstream_processing_errors_total",
                                       {"stage": "profile", "error": "ValueError"}) or 0
    fired = store.close_expired(T0 + 190 * S, partitions=[5])
    assert [(t["oneid"], t["rule"]) for t in fired] == [(healthy, "pricing_dwell")]
    assert REGISTRY.get_sample_value("touchstream_processing_errors_total",
                                     {"stage": "profile", "error": "ValueError"}) == errors + 1
    due = redis_client.zrange(layout.due_key(store._core.prefix, 5), 0, -1, withscores=True)
    scores = [score for member, score in due if broken in member.decode()]
    assert T0 + 190 * S + TIMER_RETRY_MS in scores and min(scores) > T0 + 190 * S  # nothing of it still due
    assert store.close_expired(T0 + 200 * S, partitions=[5]) == []  # set aside: not retried at once

    redis_client.hset(main, layout.LAST_SEEN, str(T0))  # repaired: its retry fires it
    again = store.close_expired(T0 + 190 * S + TIMER_RETRY_MS, partitions=[5])
    assert [(t["oneid"], t["rule"]) for t in again] == [(broken, "pricing_dwell")]
