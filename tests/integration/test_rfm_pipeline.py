"""`touchstream rfm` on the real stack: lake -> identify events -> the worker's profile stage ->
profile traits and the win-back trigger."""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from apps import factory
from schemas.codec import default_registry
from schemas.testing import event_record
from streams.topics import Topics
from tests.integration.conftest import TopicReader, wait_caught_up
from tests.integration.lake_helpers import produce
from tests.unit.analytics.lakes import write_lake

DAY = 86_400_000


def test_rfm_traits_reach_profiles_through_the_pipeline_and_fire_the_win_back(settings, worker, redis_client,
                                                                              tmp_path: Path, run_id: str):
    now = int(time.time() * 1000)
    people = [f"rfm-{run_id}-{i}" for i in range(10)]
    # people[0]: the most orders and revenue, but the oldest last order: R 1, F 5, M 5 (can't lose them);
    # the others ordered once each, later and later, for little
    orders = [event_record("track", now - 200 * DAY + k, oneid=people[0], event="Order Completed",
                           properties={"revenue": 500}) for k in range(5)]
    orders += [event_record("track", now - (100 - i) * DAY, oneid=who, event="Order Completed",
                            properties={"revenue": i}) for i, who in enumerate(people[1:], start=1)]
    write_lake(tmp_path, orders)
    # the win-back is a marketing trigger: the customer agreed to hear from us
    encode = default_registry().encoder("event")
    resolved = Topics.of(settings).resolved
    produce(settings, resolved, [(people[0].encode(), encode(event_record(
        "identify", now - 1000, oneid=people[0], traits={"marketing_consent": True})))])
    triggers = TopicReader(settings, Topics.of(settings).triggers, "trigger")
    try:
        env = replace(settings, lake_path=str(tmp_path)).child_env()
        done = subprocess.run([sys.executable, "-m", "apps.cli", "rfm"], env=env, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "rfm: 10 profile(s) updated" in done.stderr
        assert "cant_lose_them      | 1-2 | 5   | 1 " in done.stdout
        wait_caught_up(settings, resolved)
        store = factory.profile_store(settings, redis_client)
        profiles = {who: store.get_profile(who) for who in people}
        held = {who: (p["traits"]["rfm_segment"], p["traits"]["rfm_score"]) for who, p in profiles.items()}
        assert held[people[0]] == ("cant_lose_them", 155)
        assert held[people[1]] == ("lost", 111)  # second oldest, one order, the least revenue
        assert held[people[9]] == ("potential_loyalists", 515)  # the latest, one order, 2nd most revenue
        fired = triggers.until(lambda rs: any(r["rule"] == "rfm_win_back" for r in rs), timeout=60)
        assert [r["oneid"] for r in fired if r["rule"] == "rfm_win_back"] == [people[0]]
    finally:
        triggers.close()
