"""Segment membership in the real Redis: each entry and exit recorded once, whoever evaluates."""

from __future__ import annotations

import json
import textwrap
import uuid

import pytest

from profiles import layout as profile_layout
from profiles.rules import load_rules
from profiles.segments import from_line
from profiles.store import TIMER_RETRY_MS, ProfileStore
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


# -- entering by time alone: the segment timer --------------------------------------------------------

DORMANT = load_rules(textwrap.dedent("""
    options: {segment_recheck: 6h}
    aggregates:
      orders: {on: "track:Order Completed", op: count}
    segments:
      dormant: {if: 'profile.last_seen != null && now - profile.last_seen > 90 * 86400000'}
      buyers: {if: profile.agg.orders >= 1}
"""), strict=True)


def segment_timers(redis_client, prefix, partition=0) -> dict[str, int]:
    """The segment timers of one partition: OneID -> due (ms)."""
    found = redis_client.zrange(f"{prefix}pdue:{partition}", 0, -1, withscores=True)
    return {m.decode()[2:]: int(s) for m, s in found if m.startswith(b"s|")}


def test_a_quiet_person_enters_by_the_clock_once_and_leaves_at_their_next_event(redis_client, prefix):
    store = ProfileStore(redis_client, prefix, DORMANT)
    who = new_id()
    assert store.apply_batch(0, numbered([page("/", T0, who)]), T0).segments == []
    assert segment_timers(redis_client, prefix) == {who: T0 + 6 * H}  # nothing known sooner
    # the sweep on the day before: not yet; the next look is the crossing, to the second
    assert store.close_expired_result(T0 + 90 * D - 2 * H, [0]).segments == []
    due = segment_timers(redis_client, prefix)[who]
    assert T0 + 90 * D < due <= T0 + 90 * D + S
    assert store.close_expired_result(due - 1, [0]).segments == []  # nothing due yet
    entered = store.close_expired_result(due, [0]).segments
    assert changes(entered) == [("dormant", who, "entered", "time")]
    assert json.loads(entered[0]["facts"])["last_seen"] == T0
    assert store.close_expired_result(due, [0]).segments == []  # once: the timer moved on
    assert segment_timers(redis_client, prefix)[who] == due + 6 * H  # a member is re-checked
    assert store.get_profile(who)["segments"] == {"dormant": due}
    assert outbox(redis_client, prefix) == entered  # until the stage has Kafka's ack
    back = numbered([track("Order Completed", T0 + 91 * D, who, message_id=f"{who}-back")], start=1)
    left = store.apply_batch(0, back, T0 + 91 * D).segments
    assert sorted(changes(left)) == [("buyers", who, "entered", "event"), ("dormant", who, "exited", "event")]
    assert store.apply_batch(0, back, T0 + 91 * D).segments == []  # a replay: nothing again
    assert segment_timers(redis_client, prefix)[who] <= T0 + 91 * D + 6 * H  # looked at again in time


def test_two_sweeps_reading_the_same_due_person_record_the_entry_once(redis_client, prefix):
    store = ProfileStore(redis_client, prefix, DORMANT)
    who = new_id()
    store.apply_batch(0, numbered([page("/", T0, who)]), T0)
    late = T0 + 100 * D
    steps = store._core.close_expired(late, [0])
    read = call(store, next(steps))  # one sweep read the due timer and the profile
    assert changes(store.close_expired_result(late, [0]).segments) == [("dormant", who, "entered", "time")]
    assert finish(store, steps, read).segments == []  # the other's evaluation was refused, redone
    assert store.segment_versions()["dormant"] == 1


def test_rules_without_a_timed_segment_keep_no_segment_timer(redis_client, prefix):
    rules = load_rules(textwrap.dedent("""
        aggregates:
          orders: {on: "track:Order Completed", op: count}
        segments:
          buyers: {if: profile.agg.orders >= 1}
          vip: {if: 'has(profile.traits.plan) && profile.traits.plan == "vip"'}
    """), strict=True)
    store = ProfileStore(redis_client, prefix, rules)
    people = [new_id() for _ in range(20)]
    events = [e for who in people
              for e in (track("Order Completed", T0, who), identify({"plan": "vip"}, T0, who))]
    assert len(store.apply_batch(0, numbered(events), T0).segments) == 40
    store.sweep_segments(T0 + 2 * H)
    store.close_expired_result(T0 + 2 * H, [0])
    assert redis_client.zcard(f"{prefix}pdue:0") == 0


def test_a_timer_left_by_rules_that_no_longer_time_anything_is_dropped(redis_client, prefix):
    who = new_id()
    ProfileStore(redis_client, prefix, DORMANT).apply_batch(0, numbered([page("/", T0, who)]), T0)
    untimed = load_rules("segments: {vip: {if: 'has(profile.traits.plan)'}}", strict=True)
    assert ProfileStore(redis_client, prefix, untimed).close_expired_result(T0 + D, [0]).segments == []
    assert segment_timers(redis_client, prefix) == {}


def test_a_merge_keeps_the_earlier_timer_for_the_survivor_and_deletion_drops_it(redis_client, prefix):
    store = ProfileStore(redis_client, prefix, DORMANT)
    survivor, merged = new_id(), new_id()
    store.apply_batch(0, numbered([page("/", T0, merged)]), T0)
    store.apply_batch(0, numbered([page("/", T0 + H, survivor)], start=1), T0 + H)
    store.merge_profiles(survivor, merged, T0 + H)
    assert segment_timers(redis_client, prefix) == {survivor: T0 + 6 * H}
    assert store.refresh_segments([survivor], T0 + H, "merge") == []
    assert segment_timers(redis_client, prefix) == {survivor: T0 + 7 * H}  # evaluated: from its last event
    store.delete_profile(survivor)
    assert segment_timers(redis_client, prefix) == {}


def scan(store: ProfileStore, now_ms: int) -> int:
    """Run the timer scan to its end (a step scans `count` keys of the whole shared keyspace)."""
    added = 0
    for _ in range(10_000):
        added += store.schedule_segments(now_ms, count=500)
        if store._core._scanned is not None:
            return added
    raise AssertionError("the scan never finished")


UNTIMED = load_rules(textwrap.dedent("""
    aggregates:
      orders: {on: "track:Order Completed", op: count}
    segments:
      buyers: {if: profile.agg.orders >= 1}
"""), strict=True)


def test_rules_that_gain_a_timed_segment_give_every_quiet_profile_a_timer(redis_client, prefix):
    people = [new_id() for _ in range(30)]
    before = ProfileStore(redis_client, prefix, UNTIMED)
    assert before.apply_batch(0, numbered([page("/", T0, who) for who in people]), T0).segments == []
    assert scan(before, T0) == len(people)  # evaluated once under these rules ...
    assert before.close_expired_result(T0, [0]).segments == []
    assert segment_timers(redis_client, prefix) == {}  # ... and no lasting timer: nothing timed
    assert before.schedule_segments(T0) == 0  # done: nothing more, not even a read
    # the rules now hold `dormant`; these people send nothing more
    store = ProfileStore(redis_client, prefix, DORMANT)
    assert scan(store, T0 + D) == len(people)
    assert segment_timers(redis_client, prefix) == dict.fromkeys(people, T0 + D)
    assert store.schedule_segments(T0 + D) == 0
    assert ProfileStore(redis_client, prefix, DORMANT).schedule_segments(T0 + D) == 0  # another process
    entered = store.close_expired_result(T0 + 100 * D, [0]).segments
    assert sorted(changes(entered)) == sorted(("dormant", who, "entered", "time") for who in people)


def with_vip(condition: str):
    return load_rules(textwrap.dedent(f"""
        aggregates:
          orders: {{on: "track:Order Completed", op: count}}
        segments:
          buyers: {{if: profile.agg.orders >= 1}}
          vip: {{if: '{condition}'}}
    """), strict=True)


def test_a_segment_added_or_changed_fills_once_for_people_who_send_nothing_more(redis_client, prefix):
    vips, others = [new_id() for _ in range(12)], [new_id() for _ in range(8)]
    plans = [identify({"plan": "vip" if who in vips else "free"}, T0, who) for who in vips + others]
    before = ProfileStore(redis_client, prefix, UNTIMED)
    before.apply_batch(0, numbered(plans), T0)
    scan(before, T0)
    before.close_expired_result(T0, [0])
    # a hot reload adds `vip`: today's VIPs are in it without another event, each entered once
    rules = with_vip('profile.traits.plan == "vip"')
    store = ProfileStore(redis_client, prefix, rules)
    assert scan(store, T0 + H) == len(vips) + len(others)
    entered = store.close_expired_result(T0 + H, [0]).segments
    assert sorted(changes(entered)) == sorted(("vip", who, "entered", "time") for who in vips)
    assert store.segment_count("vip") == len(vips) and segment_timers(redis_client, prefix) == {}
    # the scan run again (a crash before the cursor was seen done, another worker) records nothing
    redis_client.delete(f"{prefix}{profile_layout.SEGMENT_SCAN_KEY}")
    again = ProfileStore(redis_client, prefix, rules)
    assert scan(again, T0 + 2 * H) == len(vips) + len(others)
    assert again.close_expired_result(T0 + 2 * H, [0]).segments == []
    # its condition changes: who no longer matches leaves, who now matches enters, once each
    changed = ProfileStore(redis_client, prefix, with_vip('profile.traits.plan in ["vip", "free"] '
                                                          '&& profile.traits.plan != "vip"'))
    scan(changed, T0 + 3 * H)
    moved = changed.close_expired_result(T0 + 3 * H, [0]).segments
    assert sorted(changes(moved)) == sorted([("vip", who, "exited", "time") for who in vips]
                                            + [("vip", who, "entered", "time") for who in others])
    assert changed.close_expired_result(T0 + 4 * H, [0]).segments == []
    versions = changed.segment_versions()
    assert versions["vip"] == 2 * len(vips) + len(others)  # every change took one version, no more


def test_a_member_whose_re_check_raises_is_set_aside_and_the_others_leave_on_time(
        store, redis_client, prefix):
    healthy, broken = new_id(), new_id()
    for who in (healthy, broken):
        store.apply_batch(0, numbered([page("/pricing", T0, who), page("/pricing", T0 + H, who)]), T0 + H)
    assert store.segment_count("keen_pricing") == 2
    redis_client.hset(profile_layout.profile_key(prefix, broken), profile_layout.LAST_SEEN, "not-a-time")
    exited = store.sweep_segments(T0 + H + 2 * D + S)  # the tag expired for both
    assert changes(exited) == [("keen_pricing", healthy, "exited", "time")]
    retry = redis_client.zscore(profile_layout.segment_key(prefix, "keen_pricing"), broken)
    assert retry == T0 + H + 2 * D + S + TIMER_RETRY_MS  # tried again an hour later, not at once
    assert store.sweep_segments(T0 + H + 2 * D + 2 * S) == []


HOT = load_rules(textwrap.dedent("""
    options: {segment_recheck: 6h}
    tags:
      high_intent: {on: page, where: 'event.path == "/pricing"', ttl: 2d}
    score:
      half_life: 30d
      behaviour:
        view: {on: page, points: 40}
    segments:
      hot_leads: {if: 'profile.score >= 60 && "high_intent" in profile.tags'}
"""), strict=True)


def test_only_members_of_a_segment_time_only_empties_keep_a_timer_and_leave_on_time(redis_client, prefix):
    hot, cold = new_id(), new_id()
    store = ProfileStore(redis_client, prefix, HOT)
    events = [page("/pricing", T0, hot), page("/pricing", T0 + S, hot), page("/", T0, cold)]
    entered = store.apply_batch(0, numbered(events), T0 + S).segments
    assert changes(entered) == [("hot_leads", hot, "entered", "event")]
    assert segment_timers(redis_client, prefix) == {hot: T0 + S + 6 * H}  # the outsider: none
    # an outsider's timer from before (the old rules timed everyone) is dropped once evaluated
    redis_client.zadd(f"{prefix}pdue:0", {f"s|{cold}": T0 + H})
    assert store.close_expired_result(T0 + H, [0]).segments == []
    assert cold not in segment_timers(redis_client, prefix)
    exited = []
    for _ in range(20):  # the member's timer, followed: it leaves when its tag expires, once
        due = min(segment_timers(redis_client, prefix).values(), default=None)
        if due is None:
            break
        exited += store.close_expired_result(due, [0]).segments + store.sweep_segments(due)
    assert changes(exited) == [("hot_leads", hot, "exited", "time")]
    assert segment_timers(redis_client, prefix) == {}
    assert exited[0]["as_of"] == T0 + S + 2 * D  # the tag's expiry, to the millisecond
