"""Live equals history on the real stack: the worker and the lake sink over the same events, then
`touchstream verify` and `touchstream backfill`.

A pipeline of its own (topics, consumer groups, Redis prefix): the run's topics hold every other
test's events, whose profiles other tests change on purpose.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import redis

from profiles import layout
from profiles.rules import load_rules_file, storage_id
from profiles.rules.reload import DEFAULT_RULES_PATH
from schemas.codec import EVENT, default_registry
from schemas.testing import event_record
from streams.topics import Topics
from tests.integration.conftest import WorkerProcess, free_port, wait_caught_up
from tests.integration.lake_helpers import LakeProcess, lake_settings, produce, wait_committed
from touchstream.settings import Settings

D, H = 86_400_000, 3_600_000
PEOPLE = 12
NEW_RULE = """
  big_orders_60d:
    on: "track:Order Completed"
    where: has(event.properties.revenue) && double(event.properties.revenue) >= 100
    op: sum
    value: double(event.properties.revenue)
    window: 60d
"""


@dataclass
class Pipeline:
    config: Settings
    tmp: Path
    worker: WorkerProcess
    now: int
    m: str  # this run's mark in every identifier
    sent: int = 0

    def run(self, *args: str, rules: Path | None = None) -> subprocess.CompletedProcess[str]:
        config = self.config if rules is None else replace(self.config, profile_rules_path=str(rules))
        return subprocess.run([sys.executable, "-m", "apps.cli", *args], env=config.child_env(),
                              capture_output=True, text=True, timeout=300)

    def send(self, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Raw events, each person's on one partition in time order (keyed by the person)."""
        encode = default_registry().encoder(EVENT)
        records = [(key.encode(), encode(e)) for key, e in events]
        produce(self.config, Topics.of(self.config).raw, records)
        self.sent += len(events)

    def settle(self) -> None:
        """The worker applied everything sent and the lake holds it."""
        topics = Topics.of(self.config)
        for topic in (topics.raw, topics.resolved, topics.merges):
            wait_caught_up(self.config, topic)
        sink = LakeProcess(self.config, self.tmp / "lake.log").start()
        try:
            wait_committed(self.config, f"{self.config.app_id}-lake")
        finally:
            assert sink.stop() == 0, (self.tmp / "lake.log").read_text()[-3000:]

    def restart_worker(self, rules: Path) -> None:
        assert self.worker.stop() == 0
        config = replace(self.config, profile_rules_path=str(rules))
        self.worker = WorkerProcess(config, self.tmp / "worker.log", free_port()).start()


def identifiers(**ids: str) -> list[dict[str, str]]:
    return [{"type": t, "value": v} for t, v in ids.items()]


def person_events(k: int, m: str, now: int) -> list[tuple[str, dict[str, Any]]]:
    """Two devices browse, the person signs in on both (two profiles merge), then buys."""
    key, anon, other, user = f"k{k}-{m}", f"a{k}-{m}", f"b{k}-{m}", f"u{k}-{m}"
    at = now - 20 * D + k * H
    out = []
    for i, path in enumerate(["/pricing", "/features/sso", "/pricing", "/pricing/team"][: 2 + k % 3]):
        out.append(event_record("page", at + i * H, anonymous_id=anon, received_at=now,
                                identifiers=identifiers(anonymous_id=anon), properties={"path": path}))
    for i, path in enumerate(["/", "/features/audit-log"]):
        out.append(event_record("page", at + 5 * H + i * H, anonymous_id=other, received_at=now,
                                identifiers=identifiers(anonymous_id=other), properties={"path": path}))
    out.append(event_record("identify", at + D, anonymous_id=anon, user_id=user, received_at=now,
                            identifiers=identifiers(anonymous_id=anon, user_id=user),
                            traits={"employees": 50 * k, "industry": "software" if k % 2 else "retail"}))
    out.append(event_record("identify", at + D + H, anonymous_id=other, user_id=user, received_at=now,
                            identifiers=identifiers(anonymous_id=other, user_id=user)))
    if k % 3 == 0:
        out.append(event_record("track", at + 2 * D, user_id=user, event="Demo Requested", received_at=now,
                                identifiers=identifiers(user_id=user)))
    return [(key, e) for e in out]


def orders(k: int, m: str, now: int, at: int, amounts: list[float]) -> list[tuple[str, dict[str, Any]]]:
    user = f"u{k}-{m}"
    return [(f"k{k}-{m}", event_record("track", at + i * H, user_id=user, event="Order Completed",
                                       received_at=now, identifiers=identifiers(user_id=user),
                                       properties={"revenue": amount, "order_id": f"o{k}-{i}-{at}"}))
            for i, amount in enumerate(amounts)]


@pytest.fixture(scope="module")
def pipeline(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    tmp = tmp_path_factory.mktemp("history")
    name = uuid.uuid4().hex[:8]
    config = lake_settings(settings, tmp / "lake", own_topics=True,
                           redis_prefix=f"{settings.redis_prefix}h{name}:")
    worker = WorkerProcess(config, tmp / "worker.log", free_port()).start()
    now = int(time.time() * 1000) - 60_000
    p = Pipeline(config, tmp, worker, now, name)
    events = [e for k in range(PEOPLE) for e in person_events(k, name, now)]
    for k in range(PEOPLE):
        events += orders(k, name, now, now - 15 * D + k * H, [40.0 * (k + 1), 120.0])
    p.send(events)
    p.settle()
    yield p
    p.worker.stop()


def summary(done: subprocess.CompletedProcess[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines and lines[-1].get("summary"), done.stdout + done.stderr
    return lines[:-1], lines[-1]


def test_verify_finds_live_equal_to_history_and_exactly_a_tampered_field(pipeline: Pipeline) -> None:
    done = pipeline.run("verify", "--format", "json")
    differences, total = summary(done)
    assert done.returncode == 0 and differences == [], done.stdout
    assert total["profiles"] == PEOPLE  # two devices each, merged into one person
    assert total["events"] == pipeline.sent

    client = redis.Redis.from_url(pipeline.config.redis_url, decode_responses=True)
    merged = "SELECT DISTINCT survivor FROM identities WHERE hops > 0 ORDER BY 1"
    table = pipeline.run("sql", merged, "--format", "json")
    victim = json.loads(table.stdout.splitlines()[0])["survivor"]
    key = layout.profile_key(pipeline.config.redis_prefix, victim)
    sid = storage_id("page_views_30d")
    buckets = [f for f in client.hkeys(key) if f.startswith(f"{layout.BUCKET}{sid}:")]
    field = max(buckets, key=lambda f: int(f.rsplit(":", 1)[1]))  # the latest: inside the window
    client.hincrby(key, field, 2)
    try:
        done = pipeline.run("verify", "--format", "json")
        differences, total = summary(done)
        assert done.returncode == 1
        assert [(d["oneid"], d["field"], d["live"] - d["history"]) for d in differences] == [
            (victim, "aggregates.page_views_30d", 2)]
        assert total["differences"] == 1
        table_out = pipeline.run("verify")
        assert table_out.returncode == 1 and victim in table_out.stdout
        assert "1 difference(s)" in table_out.stdout
    finally:
        client.hincrby(key, field, -2)
    assert pipeline.run("verify").returncode == 0


def test_backfill_seeds_a_new_aggregate_as_if_it_had_always_been_there(pipeline: Pipeline) -> None:
    rules = pipeline.tmp / "rules.yaml"
    text = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    rules.write_text(text.replace("\naggregates:\n", "\naggregates:\n" + NEW_RULE, 1), encoding="utf-8")
    assert "big_orders_60d" in load_rules_file(rules).aggregates
    m, now = pipeline.m, pipeline.now

    # the rule is in force from here: these orders the stream counts itself, before the backfill
    pipeline.restart_worker(rules)
    pipeline.send([e for k in range(0, PEOPLE, 2) for e in orders(k, m, now, now - 8 * D + k * H, [300, 5])])
    pipeline.settle()
    done = pipeline.run("verify", "--format", "json", "--aggregate", "big_orders_60d", rules=rules)
    assert done.returncode == 1  # live lacks everything before the rule

    first = pipeline.run("backfill", "--aggregate", "big_orders_60d", rules=rules)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{PEOPLE} profile(s) with history" in first.stdout and "seeded" in first.stdout, first.stdout
    again = pipeline.run("backfill", "--aggregate", "big_orders_60d", rules=rules)
    assert again.returncode == 0 and f"{PEOPLE} same" in again.stdout, again.stdout  # idempotent

    # and after it, the stream goes on counting on top of the seeded buckets
    pipeline.send([e for k in range(1, PEOPLE, 2) for e in orders(k, m, now, now - 2 * D + k * H, [150, 99])])
    pipeline.settle()
    done = pipeline.run("verify", "--format", "json", rules=rules)
    differences, total = summary(done)
    assert done.returncode == 0 and differences == [], done.stdout
    assert total["events"] == pipeline.sent

    # the value from scratch, by hand: every order of >= 100 in the 60 days (none older)
    store_rules = replace(pipeline.config, profile_rules_path=str(rules))
    from apps import factory

    store = factory.profile_store(store_rules, redis.Redis.from_url(pipeline.config.redis_url))
    graph = factory.identity_graph(pipeline.config, redis.Redis.from_url(pipeline.config.redis_url))
    for k in range(PEOPLE):
        oneid = graph.lookup("user_id", f"u{k}-{m}")
        assert oneid is not None
        profile = store.get_profile(oneid, now + 60_000)
        assert profile is not None
        expected = [40.0 * (k + 1), 120.0] + ([300.0] if k % 2 == 0 else [150.0])
        big = sum(a for a in expected if a >= 100)
        assert profile["aggregates"]["big_orders_60d"] == pytest.approx(big), k
