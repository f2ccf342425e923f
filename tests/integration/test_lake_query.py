"""`touchstream sql` and `lake snapshot` / `lake compact` on lakes written by a real `lake run`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import redis

from apps import factory
from connectors.lake import layout
from schemas.codec import EVENT, IDENTITY_MERGE, default_registry
from schemas.testing import T0, event_record
from streams.topics import Topics
from tests.integration.conftest import TopicReader, cli, iso, post, wait_caught_up, wait_resolved
from tests.integration.lake_helpers import LakeProcess, lake_settings, produce, wait_committed
from touchstream.settings import Settings


def fill(config: Settings, log: Path) -> None:
    """Run `lake run` until it committed everything on its topics, then stop it cleanly (rolls all)."""
    sink = LakeProcess(config, log).start()
    try:
        wait_committed(config, f"{config.app_id}-lake")
    finally:
        assert sink.stop() == 0, log.read_text()[-3000:]


def sql(config: Settings, query: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "apps.cli", "sql", query, *args], env=config.child_env(),
                          capture_output=True, text=True, timeout=120)


def rows_json(config: Settings, query: str) -> list[dict]:
    done = sql(config, query, "--format", "json")
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_identities_follow_a_merge_chain_and_compaction_keeps_the_rows(settings: Settings,
                                                                        tmp_path: Path) -> None:
    config = lake_settings(settings, tmp_path / "lake", own_topics=True, lake_batch_size=7,
                           lake_roll_bytes=1)  # tiny files
    m = uuid.uuid4().hex[:8]
    a, b, c = f"a-{m}", f"b-{m}", f"c-{m}"
    registry = default_registry()
    event, merge = registry.encoder(EVENT), registry.encoder(IDENTITY_MERGE)
    topics = Topics.of(config)
    produce(config, topics.resolved, [
        (o.encode(), event(event_record("track", T0 + i, message_id=f"lq-{m}-{o}-{i}", oneid=o,
                                        event="Seen"))) for o in (a, b, c) for i in range(20)])
    # c was folded into b, later b into a: c's history belongs to a now
    produce(config, topics.merges, [
        (b"k", merge({"survivor": b, "merged": c, "message_id": "x", "timestamp": T0 + 100,
                      "reason": "email"})),
        (b"k", merge({"survivor": a, "merged": b, "message_id": "y", "timestamp": T0 + 200,
                      "reason": "phone"}))])
    fill(config, tmp_path / "lake.log")

    query = (f"SELECT i.survivor, count(*) AS n, count(DISTINCT e.oneid) AS stamped FROM events e "
             f"JOIN identities i USING (oneid) WHERE e.message_id LIKE 'lq-{m}-%' GROUP BY 1")
    assert rows_json(config, query) == [{"survivor": a, "n": 60, "stamped": 3}]
    hops = rows_json(config, f"SELECT oneid, hops FROM identities WHERE oneid IN ('{b}', '{c}') ORDER BY 1")
    assert hops == [{"oneid": b, "hops": 1}, {"oneid": c, "hops": 2}]

    lake = tmp_path / "lake"
    everything = "SELECT * FROM events ORDER BY _partition, _offset"
    before_files = len(layout.table_files(lake, "events"))
    before = sql(config, everything, "--format", "csv").stdout
    out = cli(config, "lake", "compact", "--small-mb", "64")
    assert "merged into" in out
    assert len(layout.table_files(lake, "events")) < before_files
    assert sql(config, everything, "--format", "csv").stdout == before

    parquet = tmp_path / "out.parquet"
    assert sql(config, everything, "--format", "parquet", "--out", str(parquet)).returncode == 0
    assert pq.read_table(parquet).num_rows == len(before.splitlines()) - 1


def test_bad_sql_exits_non_zero_with_duckdbs_message(settings: Settings, tmp_path: Path) -> None:
    config = lake_settings(settings, tmp_path / "lake", own_topics=True)
    for query, message in (("SELEC 1", "Parser Error"), ("SELECT nope FROM events", "Binder Error"),
                           ("SELECT * FROM no_such_view", "Catalog Error")):
        done = sql(config, query)
        assert done.returncode != 0
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert rows_json(config, "SELECT count(*) AS n FROM triggers") == [{"n": 0}]  # an empty lake reads


def test_a_real_merge_and_the_profile_snapshot_round_trip(settings: Settings, tmp_path: Path, collector: str,
                                                          write_key: str, worker: object) -> None:
    config = lake_settings(settings, tmp_path / "lake")
    m = uuid.uuid4().hex[:8]
    now = int(time.time() * 1000) - 60_000
    steps = [
        ("/v1/page", {"anonymousId": f"web-{m}", "name": "Pricing", "properties": {"path": "/pricing"}}),
        ("/v1/page", {"anonymousId": f"app-{m}", "name": "Pricing", "properties": {"path": "/pricing"}}),
        ("/v1/identify", {"anonymousId": f"web-{m}", "userId": f"u-{m}"}),
        ("/v1/identify", {"anonymousId": f"app-{m}", "userId": f"u-{m}"}),  # two people become one
        ("/v1/track", {"userId": f"u-{m}", "event": "Order Completed", "properties": {"revenue": 10}}),
    ]
    reader = TopicReader(settings, Topics.of(settings).resolved, "event")
    ids: set[str] = set()
    for i, (path, body) in enumerate(steps):
        if i == 2:  # two profiles exist before they are linked (a batch would stamp the survivor)
            wait_resolved(reader, ids)
        body = {**body, "messageId": f"lr-{m}-{i}", "timestamp": iso(now + i * 1000)}
        assert post(collector + path, body, key=write_key)[0] == 200
        ids.add(body["messageId"])
    wait_resolved(reader, ids)
    reader.close()
    wait_caught_up(settings, Topics.of(settings).resolved)  # the profile stage applied them all
    fill(config, tmp_path / "lake.log")

    mine = f"FROM events e JOIN identities i USING (oneid) WHERE message_id LIKE 'lr-{m}-%'"
    history = rows_json(config, "SELECT count(DISTINCT e.oneid) AS stamped, "
                                f"count(DISTINCT i.survivor) AS people {mine}")
    assert history == [{"stamped": 2, "people": 1}]
    survivor = rows_json(config, f"SELECT DISTINCT i.survivor {mine}")[0]["survivor"]

    assert "profile(s)" in cli(config, "lake", "snapshot")
    snap = rows_json(config, "SELECT oneid, tier, score, tags, aggregates, traits, last_seen FROM profiles "
                             f"WHERE oneid = '{survivor}'")
    live = factory.profile_store(settings, redis.Redis.from_url(settings.redis_url)).get_profile(survivor)
    assert live is not None and len(snap) == 1
    (row,) = snap
    assert (row["tier"], row["score"], row["last_seen"]) == (live["tier"], live["score"], live["last_seen"])
    for name in ("tags", "aggregates", "traits"):
        assert json.loads(row[name]) == json.loads(json.dumps(live[name], default=str)), name
    assert json.loads(row["aggregates"]).get("page_views_30d") == 2  # both people's views, one profile
