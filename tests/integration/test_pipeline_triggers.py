"""Real-time triggers end to end on the real stack: collector -> worker -> triggers topic."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import replace

import pytest

from identity.synthetic import generate, squeeze
from schemas.testing import anonymous_page
from streams.topics import Topics, create_topics
from tests.integration.conftest import (
    TopicReader,
    WorkerProcess,
    api,
    assert_aggregates_equal_recount,
    free_port,
    iso,
    kill_three_times,
    post,
    produce_raw,
    wait_caught_up,
    wait_merges_acknowledged,
    wait_resolved,
    wait_triggers_acknowledged,
)

NOW = lambda: int(time.time() * 1000)  # noqa: E731


@pytest.fixture(scope="module")
def triggers(settings, worker):
    reader = TopicReader(settings, Topics.of(settings).triggers, "trigger")
    yield reader
    reader.close()


@pytest.fixture(scope="module")
def resolved(settings, worker):
    reader = TopicReader(settings, Topics.of(settings).resolved, "event")
    yield reader
    reader.close()


def page(who: str, path: str, ts: int, mid: str) -> dict:
    return {"messageId": mid, "anonymousId": who, "name": path, "properties": {"path": path},
            "timestamp": iso(ts)}


def fired_for(reader: TopicReader, oneid: str, rule: str, *, wait_s: float, at_least: int = 1) -> list[dict]:
    def enough(records: list[dict]) -> bool:
        return sum(1 for r in records if r["oneid"] == oneid and r["rule"] == rule) >= at_least

    reader.until(enough, wait_s)
    return [r for r in reader.records if r["oneid"] == oneid and r["rule"] == rule]


def test_pricing_dwell_closed_by_the_next_page_fires_once_and_resending_fires_nothing(
        collector, write_key, read_key, resolved, triggers):
    who, t0 = f"dw-{uuid.uuid4().hex[:8]}", NOW() - 600_000
    messages = [page(who, "/pricing", t0, f"{who}-0"), page(who, "/docs", t0 + 200_000, f"{who}-1")]
    for message in messages:
        assert post(collector + "/v1/page", message, key=write_key)[0] == 200
    oneid = wait_resolved(resolved, {f"{who}-1"})[f"{who}-1"]["oneid"]
    [dwell] = fired_for(triggers, oneid, "pricing_dwell", wait_s=30)
    assert dwell["message_id"] == f"{who}-0" and dwell["marketing"] is False

    for message in messages:  # an SDK re-sends everything: nothing new may fire
        assert post(collector + "/v1/page", message, key=write_key)[0] == 200
    time.sleep(3)
    assert len(fired_for(triggers, oneid, "pricing_dwell", wait_s=2, at_least=2)) == 1
    status, listed = api(collector, "GET", f"/v1/profiles/{oneid}/triggers", read_key)
    assert status == 200 and [t["rule"] for t in listed["triggers"]].count("pricing_dwell") == 1


def test_an_open_pricing_view_fires_by_the_clock_within_seconds(collector, write_key, resolved, triggers):
    who = f"idle-{uuid.uuid4().hex[:8]}"
    message = page(who, "/pricing", NOW() - 190_000, f"{who}-0")  # 190 s ago, no follow-up ever
    accepted_ms = NOW()
    assert post(collector + "/v1/page", message, key=write_key)[0] == 200
    oneid = wait_resolved(resolved, {f"{who}-0"})[f"{who}-0"]["oneid"]
    [dwell] = fired_for(triggers, oneid, "pricing_dwell", wait_s=30)
    assert dwell["message_id"] == f"{who}-0"
    # fired by the worker's clock (the sweep), after the event arrived: no later event exists
    assert dwell["fired_at"] >= accepted_ms


def test_reloading_pricing_three_times_inside_the_window_fires_once(collector, write_key, resolved, triggers):
    who, t0 = f"rl-{uuid.uuid4().hex[:8]}", NOW() - 900_000
    paths = [("/pricing", 0), ("/pricing", 40), ("/pricing", 80), ("/pricing", 120), ("/docs", 400)]
    for i, (path, second) in enumerate(paths):
        assert post(collector + "/v1/page", page(who, path, t0 + second * 1000, f"{who}-{i}"),
                    key=write_key)[0] == 200
    oneid = wait_resolved(resolved, {f"{who}-4"})[f"{who}-4"]["oneid"]
    fired_for(triggers, oneid, "pricing_dwell", wait_s=20)
    time.sleep(2)
    assert len(fired_for(triggers, oneid, "pricing_dwell", wait_s=1, at_least=2)) == 1


def test_sigkill_mid_stream_leaves_aggregates_equal_to_a_recount_and_no_trigger_twice(settings, tmp_path):
    own = replace(settings, topic_prefix=settings.topic_prefix + "-kill", app_id=settings.app_id + "-kill",
                  redis_prefix=settings.redis_prefix + "kill:", batch_size=200)
    create_topics(own)
    events, _truth = generate(150, seed=5)
    # Squeeze the synthetic 60 days into the last 20 minutes: arrival order across partitions then
    # stays within the allowed lateness, so every event must count.
    start = NOW() - 20 * 60_000
    squeezed = squeeze(events, start, 20 * 60_000)
    # plus 60 visitors who stay on /pricing for 200 s: 60 dwell triggers to fire exactly once
    for i in range(60):
        for n, (path, at) in enumerate((("/pricing", 0), ("/docs", 200_000))):
            anon = f"kill-dwell-{i}"
            squeezed.append(anonymous_page(anon, path, start + i * 10_000 + at, message_id=f"{anon}-{n}"))
    produce_raw(own, squeezed)

    worker = WorkerProcess(own, tmp_path / "worker.log", free_port())
    resolved = TopicReader(own, Topics.of(own).resolved, "event")
    try:
        kill_three_times(worker, resolved, len(squeezed))
        dead = TopicReader(own, Topics.of(own).deadletter, "deadletter")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done = len({r["message_id"] for r in resolved.until(lambda rs: False, 1)})
            if done + len(dead.until(lambda d: False, 0.5)) >= len(squeezed):
                break
        wait_caught_up(own, Topics.of(own).resolved)  # the profile stage has committed everything
        wait_merges_acknowledged(own)
        wait_caught_up(own, Topics.of(own).merges)
        wait_triggers_acknowledged(own)  # a trigger a kill left in the outbox is re-sent, not lost
    finally:
        worker.stop()
        resolved.close()
    assert_aggregates_equal_recount(own, resolved.records)

    fired = TopicReader(own, Topics.of(own).triggers, "trigger")
    try:
        records = fired.until(lambda rs: False, 5)
    finally:
        fired.close()
    keys = Counter((r["oneid"], r["idempotency_key"]) for r in records)
    dwell = [r for r in records if r["rule"] == "pricing_dwell" and r["message_id"].startswith("kill-dwell-")]
    assert len({r["message_id"] for r in dwell}) == 60  # every dwell fired, none lost to a crash
    assert max(keys.values()) == 1, [k for k, n in keys.items() if n > 1][:5]  # and none twice
