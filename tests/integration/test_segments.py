"""Segments end to end on the real stack: entries and exits on the segments topic exactly once
(a worker SIGKILLed mid-stream, then every batch replayed by a new consumer group), a merge, an
SQL segment refreshed from a lake, and the CLI's list, count and export."""

from __future__ import annotations

import csv
import io
import random
import subprocess
import sys
import textwrap
import time
import uuid
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import redis

from analytics.segments import refresh_all
from apps import factory
from connectors.lake.config import LakeConfig
from connectors.lake.query import connect
from connectors.lake.sink import LakeSink
from profiles.rules import DEFAULT_RULES_PATH, load_rules, load_rules_file
from profiles.store import ProfileStore
from schemas.codec import EVENT, IDENTITY_MERGE, default_registry
from schemas.testing import event_record
from streams.records import Record
from streams.topics import Topics, create_topics
from tests.integration.conftest import (
    TopicReader,
    WorkerProcess,
    free_port,
    iso,
    kill_three_times,
    post,
    produce_raw,
    wait_caught_up,
    wait_resolved,
)
from tests.unit.profiles.factory import T0, identify, numbered, page, track

NOW = lambda: int(time.time() * 1000)  # noqa: E731

TOGGLE_RULES = """
aggregates:
  toggles: {on: "track:Toggle", op: count}
segments:
  odd: {if: profile.agg.toggles % 2 == 1, description: flips with every toggle}
  three_or_more: {if: profile.agg.toggles >= 3}
"""


def segment_records(settings, timeout: float = 5.0) -> list[dict]:
    reader = TopicReader(settings, Topics.of(settings).segments, "segment_change")
    try:
        return reader.until(lambda rs: False, timeout)
    finally:
        reader.close()


def wait_segment_outbox_empty(settings, timeout: float = 90.0) -> None:
    """Every recorded change is on Kafka (one a kill left behind is re-sent after the grace)."""
    client = redis.Redis.from_url(settings.redis_url)
    deadline = time.monotonic() + timeout
    while client.hlen(f"{settings.redis_prefix}segments:outbox"):
        if time.monotonic() > deadline:
            raise TimeoutError("segment changes still waiting in the outbox")
        time.sleep(0.5)


def run_worker_until_caught_up(own, log: Path) -> None:
    worker = WorkerProcess(own, log, free_port()).start()
    try:
        wait_caught_up(own, Topics.of(own).raw)
        wait_caught_up(own, Topics.of(own).resolved)
        wait_segment_outbox_empty(own)
    finally:
        worker.stop()


def test_entries_and_exits_are_recorded_once_through_kills_and_a_full_replay(settings, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(TOGGLE_RULES)
    own = replace(settings, topic_prefix=settings.topic_prefix + "-seg", app_id=settings.app_id + "-seg",
                  redis_prefix=settings.redis_prefix + "seg:", batch_size=100, profile_rules_path=str(rules))
    create_topics(own)
    rng = random.Random(13)
    start = NOW() - 20 * 60_000
    toggles = {f"tog-{i}": rng.randint(0, 7) for i in range(600)}
    events = []
    for anon, n in toggles.items():
        events += [event_record("track", start + rng.randint(0, 1_000_000), message_id=f"{anon}-{k}",
                                event="Toggle", anonymous_id=anon,
                                identifiers=[{"type": "anonymous_id", "value": anon}]) for k in range(n)]
        events.append(event_record("page", start, message_id=f"{anon}-p", name="/", anonymous_id=anon,
                                   identifiers=[{"type": "anonymous_id", "value": anon}]))
    events.sort(key=lambda e: e["timestamp"])  # each person's events in time order on their partition
    produce_raw(own, events)

    worker = WorkerProcess(own, tmp_path / "worker.log", free_port())
    resolved = TopicReader(own, Topics.of(own).resolved, "event")
    try:
        kill_three_times(worker, resolved, len(events))
        wait_caught_up(own, Topics.of(own).raw)
        wait_caught_up(own, Topics.of(own).resolved)
        wait_segment_outbox_empty(own)  # a change a kill left between script and ack is re-sent
        resolved.until(lambda rs: len({r["message_id"] for r in rs}) >= len(events), 60)
    finally:
        worker.stop()
        resolved.close()
    oneid_of = {r["anonymous_id"]: r["oneid"] for r in resolved.records}
    first = segment_records(own)
    _assert_exactly_once(own, first, {oneid_of[a]: n for a, n in toggles.items()})

    # every batch again, by a new consumer group over the same state: nothing new is recorded
    replay = replace(own, app_id=own.app_id + "-replay")
    run_worker_until_caught_up(replay, tmp_path / "replay.log")
    again = segment_records(own)
    assert {r["idempotency_key"] for r in again} == {r["idempotency_key"] for r in first}


def _assert_exactly_once(settings, records: list[dict], toggles: dict[str, int]) -> None:
    client = redis.Redis.from_url(settings.redis_url)
    store = ProfileStore(client, settings.redis_prefix, load_rules(TOGGLE_RULES, strict=True))
    by_key: dict[str, dict] = {}
    for r in records:  # a re-send after a crash repeats a record whole, never with other content
        content = {k: v for k, v in r.items() if not k.startswith("_")}  # not where it sits on the topic
        assert by_key.setdefault(r["idempotency_key"], content) == content
    versions = store.segment_versions()
    for segment in ("odd", "three_or_more"):
        mine = [r for r in by_key.values() if r["segment"] == segment]
        # no loss: every version the segment handed out reached the topic, and each once
        assert sorted(r["version"] for r in mine) == list(range(1, versions.get(segment, 0) + 1))
    three = [r for r in by_key.values() if r["segment"] == "three_or_more"]
    assert sorted(r["oneid"] for r in three) == sorted(o for o, n in toggles.items() if n >= 3)
    assert {r["type"] for r in three} == {"segment_entered"}
    history: dict[str, list[str]] = defaultdict(list)
    for r in sorted((r for r in by_key.values() if r["segment"] == "odd"), key=lambda r: r["version"]):
        history[r["oneid"]].append(r["type"])
    for oneid, n in toggles.items():
        changes = history.get(oneid, [])
        assert changes == ["segment_entered", "segment_exited"] * (len(changes) // 2) + (
            ["segment_entered"] if len(changes) % 2 else []), (oneid, changes)  # they alternate
        assert (len(changes) % 2 == 1) == (n % 2 == 1), (oneid, n, changes)  # and end where the count is
    members = {o for chunk in store.segment_members("odd") for o, _ in chunk}
    assert members == {o for o, n in toggles.items() if n % 2 == 1}
    assert {r["reason"] for r in by_key.values()} == {"event"}


QUIET_S = 40  # the test's `dormant`: quiet for 40 seconds (90 days in real rules)
DORMANT_RULES = f"""
options: {{segment_recheck: 1h}}
segments:
  dormant: {{if: 'profile.last_seen != null && now - profile.last_seen > {QUIET_S * 1000}'}}
"""


def test_quiet_people_enter_by_the_clock_once_through_kills_and_leave_at_their_next_event(settings, tmp_path):
    """Nobody sends anything after their one event: each enters `dormant` when the clock says,
    recorded once although the worker is SIGKILLed three times while the entries are made;
    half of them come back and leave; a full replay records nothing new."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(DORMANT_RULES)
    own = replace(settings, topic_prefix=settings.topic_prefix + "-quiet", app_id=settings.app_id + "-quiet",
                  redis_prefix=settings.redis_prefix + "quiet:", profile_rules_path=str(rules))
    create_topics(own)
    people = [f"quiet-{i}" for i in range(240)]
    start = NOW() - (QUIET_S - 25) * 1000  # the first crosses 25 s from now, the last 40 s later
    last_seen = {anon: start + i * 40_000 // len(people) for i, anon in enumerate(people)}
    produce_raw(own, [event_record("page", ts, message_id=f"{anon}-1", name="/", anonymous_id=anon,
                                   identifiers=[{"type": "anonymous_id", "value": anon}])
                      for anon, ts in last_seen.items()])
    worker = WorkerProcess(own, tmp_path / "worker.log", free_port())
    changes = TopicReader(own, Topics.of(own).segments, "segment_change")
    resolved = TopicReader(own, Topics.of(own).resolved, "event")
    try:
        kill_three_times(worker, changes, len(people), key="idempotency_key")  # while they enter
        changes.until(lambda rs: len({r["idempotency_key"] for r in rs}) >= len(people), 120)
        resolved.until(lambda rs: len(rs) >= len(people), 60)
        oneid_of = {r["anonymous_id"]: r["oneid"] for r in resolved.records}
        back = people[::2]  # they come back: one more event each
        produce_raw(own, [event_record("page", NOW(), message_id=f"{anon}-2", name="/", anonymous_id=anon,
                                       identifiers=[{"type": "anonymous_id", "value": anon}])
                          for anon in back])
        changes.until(lambda rs: len({r["idempotency_key"] for r in rs}) >= len(people) + len(back), 120)
        wait_caught_up(own, Topics.of(own).resolved)
        wait_segment_outbox_empty(own)  # a change a kill left between script and ack is re-sent
    finally:
        worker.stop()
        changes.close()
        resolved.close()
    first = segment_records(own)
    by_key: dict[str, dict] = {}
    for r in first:  # a re-send after a crash repeats a record whole
        content = {k: v for k, v in r.items() if not k.startswith("_")}
        assert by_key.setdefault(r["idempotency_key"], content) == content
    versions = ProfileStore(redis.Redis.from_url(own.redis_url), own.redis_prefix,
                            load_rules(DORMANT_RULES, strict=True)).segment_versions()
    assert sorted(r["version"] for r in by_key.values()) == list(range(1, versions["dormant"] + 1))
    history: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for r in sorted(by_key.values(), key=lambda r: r["version"]):
        history[r["oneid"]].append((r["type"], r["reason"]))
        if r["type"] == "segment_entered":  # never before the clock says
            anon = next(a for a, o in oneid_of.items() if o == r["oneid"])
            assert r["as_of"] > last_seen[anon] + QUIET_S * 1000, r
    for anon in people:
        expected = [("segment_entered", "time")] + ([("segment_exited", "event")] if anon in back else [])
        assert history[oneid_of[anon]] == expected, anon
    members = {o for chunk in ProfileStore(redis.Redis.from_url(own.redis_url), own.redis_prefix,
                                           load_rules(DORMANT_RULES, strict=True)).segment_members("dormant")
               for o, _ in chunk}
    assert members == {oneid_of[a] for a in people if a not in back}

    # every batch again, by a new consumer group over the same state: nothing new is recorded
    run_worker_until_caught_up(replace(own, app_id=own.app_id + "-replay"), tmp_path / "replay.log")
    assert {r["idempotency_key"] for r in segment_records(own)} == set(by_key)


NO_SEGMENT_RULES = """
aggregates:
  orders: {on: "track:Order Completed", op: count}
"""
VIP_RULES = NO_SEGMENT_RULES + """
segments:
  vip: {if: 'has(profile.traits.plan) && profile.traits.plan == "vip"'}
"""


def test_a_segment_added_by_a_hot_reload_fills_once_for_people_who_send_nothing_more(settings, tmp_path):
    """People identified before the segment existed, who send nothing more, enter it once the
    rules file gains it (the worker running), each once although the worker is SIGKILLed four
    times while the scan of existing profiles fills it."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(NO_SEGMENT_RULES)
    own = replace(settings, topic_prefix=settings.topic_prefix + "-fill", app_id=settings.app_id + "-fill",
                  redis_prefix=settings.redis_prefix + "fill:", profile_rules_path=str(rules))
    create_topics(own)
    plans = {f"fill-{i}": "vip" if i % 5 < 3 else "free" for i in range(200)}
    produce_raw(own, [event_record("identify", NOW() - 60_000, message_id=f"{anon}-1", anonymous_id=anon,
                                   traits={"plan": plan},
                                   identifiers=[{"type": "anonymous_id", "value": anon}])
                      for anon, plan in plans.items()])
    vips = [anon for anon, plan in plans.items() if plan == "vip"]
    worker = WorkerProcess(own, tmp_path / "worker.log", free_port())
    changes = TopicReader(own, Topics.of(own).segments, "segment_change")
    resolved = TopicReader(own, Topics.of(own).resolved, "event")
    try:
        worker.start()
        wait_caught_up(own, Topics.of(own).raw)
        wait_caught_up(own, Topics.of(own).resolved)
        resolved.until(lambda rs: len(rs) >= len(plans), 60)
        assert changes.until(lambda rs: False, 2) == []  # no segment yet: nothing recorded
        rules.write_text(VIP_RULES)  # hot reload, the worker running
        changes.until(lambda rs: len(rs) >= 1, 120)
        worker.kill()  # killed as the scan has just begun filling it
        kill_three_times(worker, changes, len(vips), key="idempotency_key")
        changes.until(lambda rs: len({r["idempotency_key"] for r in rs}) >= len(vips), 180)
        wait_segment_outbox_empty(own)  # a change a kill left between script and ack is re-sent
    finally:
        worker.stop()
        changes.close()
        resolved.close()
    oneid_of = {r["anonymous_id"]: r["oneid"] for r in resolved.records}
    by_key: dict[str, dict] = {}
    for r in segment_records(own):  # a re-send after a crash repeats a record whole
        content = {k: v for k, v in r.items() if not k.startswith("_")}
        assert by_key.setdefault(r["idempotency_key"], content) == content
    assert sorted((r["oneid"], r["segment"], r["type"], r["reason"]) for r in by_key.values()) == sorted(
        (oneid_of[anon], "vip", "segment_entered", "time") for anon in vips)  # each VIP once, nobody else
    client = redis.Redis.from_url(own.redis_url)
    store = ProfileStore(client, own.redis_prefix, load_rules(VIP_RULES, strict=True))
    versions = store.segment_versions()
    assert sorted(r["version"] for r in by_key.values()) == list(range(1, versions["vip"] + 1))
    assert {o for chunk in store.segment_members("vip") for o, _ in chunk} == {oneid_of[a] for a in vips}


def test_a_merge_moves_membership_to_the_survivor(collector, write_key, settings, worker):
    older, newer = f"old-{uuid.uuid4().hex[:8]}", f"new-{uuid.uuid4().hex[:8]}"
    email = f"{older}@example.cn"
    resolved = TopicReader(settings, Topics.of(settings).resolved, "event")
    try:
        t = NOW() - 60_000
        assert post(collector + "/v1/identify", {"messageId": f"{older}-0", "userId": older,
                                                 "traits": {"email": email}, "timestamp": iso(t)},
                    key=write_key)[0] == 200
        survivor = wait_resolved(resolved, {f"{older}-0"})[f"{older}-0"]["oneid"]
        order = {"messageId": f"{newer}-0", "anonymousId": newer, "event": "Order Completed",
                 "properties": {"revenue": 150000, "order_id": "o-1"}, "timestamp": iso(t + 1000)}
        assert post(collector + "/v1/track", order, key=write_key)[0] == 200
        merged = wait_resolved(resolved, {f"{newer}-0"})[f"{newer}-0"]["oneid"]
        assert merged != survivor
        changes = _wait_for(settings, lambda rs: any(r["oneid"] == merged for r in rs))
        assert [(r["segment"], r["type"], r["reason"]) for r in changes if r["oneid"] == merged] == [
            ("big_spenders", "segment_entered", "event")]
        link = {"messageId": f"{newer}-1", "anonymousId": newer, "userId": older,
                "traits": {"email": email}, "timestamp": iso(t + 2000)}
        assert post(collector + "/v1/identify", link, key=write_key)[0] == 200
        wait_resolved(resolved, {f"{newer}-1"})
    finally:
        resolved.close()
    changes = _wait_for(settings, lambda rs: any(r["oneid"] == survivor for r in rs))
    mine = [(r["oneid"], r["segment"], r["type"], r["reason"], r["survivor"]) for r in changes
            if r["oneid"] in (merged, survivor)]
    # the survivor is evaluated by whichever comes second: the merge's fold or the linking event
    reason = next(r for o, _, _, r, _ in mine if o == survivor)
    assert sorted(mine) == sorted([
        (merged, "big_spenders", "segment_entered", "event", None),
        (merged, "big_spenders", "segment_exited", "merged", survivor),
        (survivor, "big_spenders", "segment_entered", reason, None),
    ]) and reason in ("merge", "event")
    store = factory.profile_store(settings, redis.Redis.from_url(settings.redis_url))
    assert store.get_profile(survivor)["segments"].keys() == {"big_spenders"}
    assert merged not in {o for chunk in store.segment_members("big_spenders") for o, _ in chunk}


def test_a_deleted_member_leaves_its_segments_on_the_topic(collector, write_key, settings, worker):
    who = f"del-{uuid.uuid4().hex[:8]}"
    resolved = TopicReader(settings, Topics.of(settings).resolved, "event")
    try:
        order = {"messageId": f"{who}-0", "anonymousId": who, "event": "Order Completed",
                 "properties": {"revenue": 200000}, "timestamp": iso(NOW() - 1000)}
        assert post(collector + "/v1/track", order, key=write_key)[0] == 200
        oneid = wait_resolved(resolved, {f"{who}-0"})[f"{who}-0"]["oneid"]
    finally:
        resolved.close()
    _wait_for(settings, lambda rs: any(r["oneid"] == oneid for r in rs))
    factory.profile_store(settings, redis.Redis.from_url(settings.redis_url)).delete_profile(oneid)
    # the delete script has no producer: the worker's next sweep sends its records
    changes = _wait_for(settings, lambda rs: any((r["oneid"], r["reason"]) == (oneid, "deleted") for r in rs))
    assert [(r["segment"], r["type"], r["reason"]) for r in changes if r["oneid"] == oneid] == [
        ("big_spenders", "segment_entered", "event"), ("big_spenders", "segment_exited", "deleted")]


def _wait_for(settings, done, timeout: float = 60.0) -> list[dict]:
    reader = TopicReader(settings, Topics.of(settings).segments, "segment_change")
    try:
        found = reader.until(done, timeout)
        assert done(found), "the segment change never came"
        return reader.until(lambda rs: False, 2)  # and nothing more soon after
    finally:
        reader.close()


# -- SQL segments --------------------------------------------------------------------------------

SQL_RULES = textwrap.dedent("""
    segments:
      buyers:
        sql: SELECT oneid FROM events WHERE event = 'Order Completed'
        description: anyone who ever ordered
      hot_leads:
        if: profile.score >= 60 && "high_intent" in profile.tags
""")


def write_lake(root: Path, prefix: str, records: list[Record]) -> None:
    sink = LakeSink(LakeConfig(path=root, topic_prefix=prefix, roll_bytes=1))
    sink.open()
    for record in records:
        sink.add(record)
    for topic, partition in dict.fromkeys((r.topic, r.partition) for r in records):
        assert sink.flush(topic, partition) == []
    sink.close()


def lake_event(prefix: str, offset: int, oneid: str, name: str) -> Record:
    value = default_registry().encoder(EVENT)(event_record("track", T0 + offset, message_id=f"m-{offset}",
                                                           oneid=oneid, event=name))
    return Record(0, offset, oneid.encode(), value, f"{prefix}.events.resolved")


def lake_merge(prefix: str, offset: int, survivor: str, merged: str) -> Record:
    merge = {"survivor": survivor, "merged": merged, "message_id": "m", "timestamp": T0 + offset,
             "reason": "email"}
    value = default_registry().encoder(IDENTITY_MERGE)(merge)
    return Record(0, offset, None, value, f"{prefix}.identity.merges")


@pytest.fixture()
def sql_settings(settings, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(SQL_RULES)
    own = replace(settings, topic_prefix=settings.topic_prefix + f"-sql{uuid.uuid4().hex[:6]}",
                  redis_prefix=settings.redis_prefix + f"sql{uuid.uuid4().hex[:6]}:",
                  profile_rules_path=str(rules), lake_path=str(tmp_path / "lake"))
    create_topics(own)
    return own


def cli(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "apps.cli", *args], env=settings.child_env(),
                          capture_output=True, timeout=120)


def test_an_sql_segment_refreshed_twice_records_its_changes_once(sql_settings):
    lake, prefix = Path(sql_settings.lake_path), sql_settings.topic_prefix
    events = [("a", "Order Completed"), ("b", "Seen"), ("c", "Order Completed"), ("d", "Seen")]
    write_lake(lake, prefix, [lake_event(prefix, i, oneid, name) for i, (oneid, name) in enumerate(events)])
    write_lake(lake, prefix, [lake_merge(prefix, 0, "d", "c")])  # c's orders are d's now
    first = cli(sql_settings, "segment", "refresh")
    assert first.returncode == 0, first.stderr
    assert b"buyers: 2 member(s), 2 entered, 0 exited" in first.stdout
    second = cli(sql_settings, "segment", "refresh", "buyers")
    assert b"buyers: 2 member(s), 0 entered, 0 exited" in second.stdout  # the same lake: nothing new
    write_lake(lake, prefix, [lake_merge(prefix, 1, "b", "a")])  # a merged into b, who never ordered himself
    third = cli(sql_settings, "segment", "refresh", "buyers")
    assert b"buyers: 2 member(s), 1 entered, 1 exited" in third.stdout
    changes = [(r["oneid"], r["type"], r["version"], r["reason"]) for r in segment_records(sql_settings)]
    assert sorted(changes, key=lambda c: c[2]) == [
        ("a", "segment_entered", 1, "refresh"), ("d", "segment_entered", 2, "refresh"),
        ("b", "segment_entered", 3, "refresh"), ("a", "segment_exited", 4, "refresh")]
    listed = cli(sql_settings, "segment", "list").stdout.decode()
    assert "buyers" in listed and "sql" in listed and "hot_leads" in listed and "stream" in listed
    assert cli(sql_settings, "segment", "count", "buyers").stdout.strip() == b"2"
    unknown = cli(sql_settings, "segment", "count", "nobody")
    assert unknown.returncode != 0 and b"no segment named 'nobody'" in unknown.stderr
    stream = cli(sql_settings, "segment", "refresh", "hot_leads")
    assert stream.returncode != 0 and b"stream segment" in stream.stderr


class CrashingPublisher:
    """Sends like the real one until ``after`` chunks, then dies between the script and the ack."""

    def __init__(self, real, after: int) -> None:
        self.real, self.after = real, after

    def send(self, changes) -> None:
        if self.after == 0:
            raise KeyboardInterrupt("killed")
        self.after -= 1
        self.real.send(changes)

    def leftovers(self):
        return self.real.leftovers()


def test_a_refresh_cut_short_is_finished_by_the_next_without_a_repeat(sql_settings):
    lake, prefix = Path(sql_settings.lake_path), sql_settings.topic_prefix
    write_lake(lake, prefix, [lake_event(prefix, i, f"p{i}", "Order Completed") for i in range(25)])
    client = redis.Redis.from_url(sql_settings.redis_url)
    store = factory.profile_store(sql_settings, client)
    rules = store.ruleset.current()
    real = factory.segment_publisher(sql_settings, client)
    with pytest.raises(KeyboardInterrupt):  # three chunks of 10: killed after the first was sent
        refresh_all(store, connect(lake), rules, CrashingPublisher(real, after=1), chunk=10)
    assert len(real.leftovers()) == 10  # the second chunk: recorded, never acknowledged
    [outcome] = refresh_all(store, connect(lake), rules, real, chunk=10)
    assert (outcome.entered, outcome.resent) == (5, 10)
    records = segment_records(sql_settings)
    assert sorted(r["oneid"] for r in records) == sorted(f"p{i}" for i in range(25))  # each once
    assert sorted(r["version"] for r in records) == list(range(1, 26))
    assert refresh_all(store, connect(lake), rules, real)[0].records == []


# -- count and export ------------------------------------------------------------------------------


def test_count_and_export_list_the_members_with_their_profile(settings, tmp_path):
    own = replace(settings, redis_prefix=settings.redis_prefix + f"exp{uuid.uuid4().hex[:6]}:")
    store = ProfileStore(redis.Redis.from_url(own.redis_url), own.redis_prefix,
                         load_rules_file(DEFAULT_RULES_PATH, strict=True))
    now = T0 + 60_000
    for who in ("hot-1", "hot-2"):
        answer = {"marketing_consent": who == "hot-1"}  # only hot-1 said yes to marketing
        events = [identify({"email": f"{who}@example.cn", **answer}, T0, who),
                  track("Demo Requested", T0 + 1, who)]
        events += [page("/pricing", T0 + 2 + i, who) for i in range(3)]
        assert store.apply_batch(0, numbered(events), now).segments
    store.apply_batch(1, numbered([page("/docs", T0, "cold")]), now)
    assert cli(own, "segment", "count", "hot_leads").stdout.strip() == b"2"
    exported = cli(own, "segment", "export", "hot_leads", "--format", "csv")
    assert exported.returncode == 0 and b"2 member(s) of hot_leads" in exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout.decode())))
    assert sorted(r["oneid"] for r in rows) == ["hot-1", "hot-2"]
    assert all(float(r["score"]) >= 60 and "high_intent" in r["tags"] and r["member_since"] == str(now)
               for r in rows)
    assert '"email": "hot-1@example.cn"' in next(r for r in rows if r["oneid"] == "hot-1")["traits"]
    out = tmp_path / "hot.parquet"
    parquet = cli(own, "segment", "export", "hot_leads", "--format", "parquet", "--out", str(out))
    assert parquet.returncode == 0, parquet.stderr
    table = pq.read_table(out)
    assert sorted(table.column("oneid").to_pylist()) == ["hot-1", "hot-2"]
    assert {"score", "tier", "tags", "traits", "last_seen"} <= set(table.column_names)
    assert cli(own, "segment", "count", "big_spenders").stdout.strip() == b"0"
    # an export for a consent purpose leaves out the members who did not allow it
    marketing = cli(own, "segment", "export", "hot_leads", "--format", "csv", "--purpose", "marketing")
    assert [r["oneid"] for r in csv.DictReader(io.StringIO(marketing.stdout.decode()))] == ["hot-1"]
    assert b"1 member(s) of hot_leads" in marketing.stderr
    unknown = cli(own, "segment", "export", "hot_leads", "--purpose", "telepathy")
    assert unknown.returncode != 0 and b"unknown consent purpose" in unknown.stderr
