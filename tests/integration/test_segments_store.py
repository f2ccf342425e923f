"""Segment membership in the real Redis: each entry and exit recorded once, whoever evaluates."""

from __future__ import annotations

import textwrap
import uuid

import pytest

from profiles.rules import load_rules
from profiles.segments import from_line
from profiles.store import ProfileStore
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
      keen_pricing: {if: 'profile.agg.pricing_7d >= 2 && "keen" in profile.tags'}
      buyers: {if: profile.agg.orders >= 1}
      vip: {if: 'has(profile.traits.plan) && profile.traits.plan == "vip"'}
      lapsed: {sql: SELECT oneid FROM events}
"""),
    strict=True,
)


@pytest.fixture()
def prefix(settings) -> str:
    return f"{settings.redis_prefix}seg{uuid.uuid4().hex[:6]}:"


@pytest.fixture()
def store(redis_client, prefix) -> ProfileStore:
    return ProfileStore(redis_client, prefix, RULES)


def new_id() -> str:
    return "o" + uuid.uuid4().hex[:20]


def changes(records) -> list[tuple[str, str, str, str]]:
    return [(r["segment"], r["oneid"], r["type"].removeprefix("segment_"), r["reason"]) for r in records]


def outbox(redis_client, prefix) -> list[dict]:
    return [from_line(v) for v in redis_client.hvals(f"{prefix}segments:outbox")]


def test_a_person_enters_once_and_exits_once_under_replays(store, redis_client, prefix):
    who = new_id()
    first = numbered([page("/pricing", T0, who), page("/docs", T0 + S, who)])
    assert store.apply_batch(0, first, T0 + S).segments == []
    second = numbered([page("/pricing", T0 + H, who, message_id=f"{who}-m")], start=2)
    entered = store.apply_batch(0, second, T0 + H).segments
    assert changes(entered) == [("keen_pricing", who, "entered", "event")]
    assert entered[0]["message_id"] == f"{who}-m"
    assert entered[0]["idempotency_key"] == f"keen_pricing:{who}:{entered[0]['version']}"
    assert store.apply_batch(0, second, T0 + 2 * H).segments == []  # a replay: nothing again
    assert store.apply_batch(0, first + second, T0 + 2 * H).segments == []
    assert store.segment_count("keen_pricing") == 1
    assert store.get_profile(who)["segments"] == {"keen_pricing": T0 + H}  # member since
    assert outbox(redis_client, prefix) == entered  # until the stage has Kafka's ack

    # time alone: the tag expires two days after the last view; the sweep finds the member due
    assert store.sweep_segments(T0 + H + D) == []
    exited = store.sweep_segments(T0 + H + 2 * D + S)
    assert changes(exited) == [("keen_pricing", who, "exited", "time")]
    assert exited[0]["version"] > entered[0]["version"]
    assert store.sweep_segments(T0 + 10 * D) == [] and store.segment_count("keen_pricing") == 0


def test_an_evaluation_read_before_a_merge_is_done_again_on_a_fresh_read(store, redis_client, prefix):
    survivor, merged = new_id(), new_id()
    store.apply_batch(0, numbered([track("Order Completed", T0, merged)]), T0)
    store.apply_batch(1, numbered([identify({"plan": "basic"}, T0, survivor)]), T0)
    # the profile stage reads the survivor, then the merge-profiles loop folds the buyer into it
    vip = numbered([identify({"plan": "vip"}, T0 + S, survivor)], start=1)
    steps = store._core.apply_batch(1, vip, T0 + S)
    read = call(store, next(steps))  # the read, done now
    outcome = store.merge_profiles(survivor, merged, T0 + S)
    assert changes(outcome["segments"]) == [("buyers", merged, "exited", "merged")]
    assert outcome["segments"][0]["survivor"] == survivor
    result = finish(store, steps, read)
    # its evaluation (vip, not a buyer) was refused and done again with the merged orders
    assert sorted(changes(result.segments)) == [("buyers", survivor, "entered", "event"),
                                                ("vip", survivor, "entered", "event")]
    assert store.refresh_segments([survivor], T0 + 2 * S, "merge") == []  # the merge stage: nothing more
    assert store.segment_count("buyers") == 1 and store.segment_count("vip") == 1


def call(store, request):
    """One request of a store operation's steps, sent to Redis."""
    method, *args = request
    return store._script(*args) if method == "script" else getattr(store.redis, method)(*args)


def finish(store, steps, reply):
    """The rest of a store operation after a reply obtained outside it; its result."""
    try:
        while True:
            reply = call(store, steps.send(reply))
    except StopIteration as done:
        return done.value


def test_deletion_leaves_every_segment_with_records_for_the_sweep(store, redis_client, prefix):
    who = new_id()
    events = [identify({"plan": "vip"}, T0, who), track("Order Completed", T0, who)]
    store.apply_batch(0, numbered(events), T0)
    store.set_members("lapsed", [(who, True)], T0)
    assert {store.segment_count(n) for n in ("vip", "buyers", "lapsed")} == {1}
    store.delete_profile(who)
    left = [r for r in outbox(redis_client, prefix) if r["type"] == "segment_exited"]
    assert sorted(changes(left)) == [(name, who, "exited", "deleted") for name in ("buyers", "lapsed", "vip")]
    assert {store.segment_count(n) for n in ("vip", "buyers", "lapsed")} == {0}


def test_sql_members_change_only_where_they_differ(store):
    a, b, c = new_id(), new_id(), new_id()
    first = store.set_members("lapsed", [(a, True), (b, True)], T0)
    assert sorted(changes(first)) == sorted(("lapsed", x, "entered", "refresh") for x in (a, b))
    assert store.set_members("lapsed", [(a, True), (b, True)], T0 + S) == []  # again: nothing
    second = store.set_members("lapsed", [(b, False), (c, True), (a, True)], T0 + 2 * S)
    assert sorted(changes(second)) == sorted([("lapsed", b, "exited", "refresh"),
                                              ("lapsed", c, "entered", "refresh")])
    members = sorted(oneid for chunk in store.segment_members("lapsed") for oneid, _ in chunk)
    assert members == sorted([a, c]) and store.segment_versions()["lapsed"] == 4


def test_a_timer_run_re_evaluates_its_person(store):
    rules = load_rules(textwrap.dedent("""
        aggregates:
          views: {on: page, op: count, window: 1h, bucket: 1m}
        triggers:
          dwell: {kind: dwell, above: 10m, marketing: false}
        segments:
          browsing: {if: profile.agg.views >= 1}
    """), strict=True)
    store = ProfileStore(store.redis, store._core.prefix + "t:", rules)
    who = new_id()
    assert changes(store.apply_batch(0, numbered([page("/a", T0, who)]), T0).segments) == [
        ("browsing", who, "entered", "event")]
    result = store.close_expired_result(T0 + 2 * H, [0])  # the open view's timer; the view left the window
    assert [t["rule"] for t in result.triggers] == ["dwell"]
    assert changes(result.segments) == [("browsing", who, "exited", "time")]
