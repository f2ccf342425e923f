"""verify reports exactly the planted difference, and nothing when live equals history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from analytics.history.verify import verify
from connectors.lake.query import connect
from profiles.rules import load_rules_file
from profiles.rules.reload import DEFAULT_RULES_PATH
from schemas.testing import T0
from tests.unit.analytics.lakes import random_stream, write_lake
from tests.unit.analytics.oracle import EngineStates

D = 86_400_000
RULES = load_rules_file(DEFAULT_RULES_PATH)


def lake(tmp_path: Path) -> EngineStates:
    events = random_stream(11, 600, 20, T0, 20 * D)
    write_lake(tmp_path, events)
    return EngineStates(RULES, events)


def test_equal_state_reports_nothing_and_says_what_it_compared(tmp_path: Path) -> None:
    oracle = lake(tmp_path)
    report = verify(connect(tmp_path), RULES, oracle.read, T0 + 20 * D)
    assert report.ok and report.profiles == 20
    assert report.fields == 20 * (len(RULES.aggregates) + 3)  # aggregates, tags, score, tier
    assert report.render_table().strip().endswith("0 difference(s) in 0 profile(s)")
    summary = json.loads(report.render_json().splitlines()[-1])
    assert summary["summary"] is True and summary["differences"] == 0 and summary["evaluated"] == []


def test_a_planted_difference_is_reported_exactly(tmp_path: Path) -> None:
    oracle = lake(tmp_path)
    victim = sorted(oracle.states)[3]

    def tampered(oneids: list[str], as_of: int) -> list[dict[str, Any] | None]:
        found = oracle.read(oneids, as_of)
        for oneid, profile in zip(oneids, found, strict=True):
            if oneid == victim and profile is not None:
                profile["aggregates"]["page_views_30d"] += 1
                profile["score"] += 0.5
            if oneid == sorted(oracle.states)[5]:
                found[oneids.index(oneid)] = None  # gone from Redis
        return found

    report = verify(connect(tmp_path), RULES, tampered, T0 + 20 * D)
    honest = oracle.read([victim], T0 + 20 * D)[0]
    assert honest is not None
    pages = honest["aggregates"]["page_views_30d"]
    assert [(d.oneid, d.field, d.live, d.history) for d in report.differences] == [
        (victim, "aggregates.page_views_30d", pages + 1, pages),
        (victim, "score", honest["score"] + 0.5, honest["score"]),
        (sorted(oracle.states)[5], "profile", None, "present"),
    ]
    table = report.render_table()
    assert victim in table and "aggregates.page_views_30d" in table
    lines = [json.loads(line) for line in report.render_json().splitlines()]
    assert lines[0] == {"oneid": victim, "field": "aggregates.page_views_30d", "live": pages + 1,
                        "history": pages}
    assert lines[-1]["differences"] == 3


def test_a_score_within_the_tolerance_is_equal(tmp_path: Path) -> None:
    oracle = lake(tmp_path)

    def rounded(oneids: list[str], as_of: int) -> list[dict[str, Any] | None]:
        found = oracle.read(oneids, as_of)
        for profile in found:
            if profile is not None:
                profile["score"] += 0.001
        return found

    assert verify(connect(tmp_path), RULES, rounded, T0 + 20 * D).ok


def test_a_subset_of_the_fields_is_compared_alone(tmp_path: Path) -> None:
    oracle = lake(tmp_path)
    con, as_of = connect(tmp_path), T0 + 20 * D
    tags_only = verify(con, RULES, oracle.read, as_of, aggregates=(), with_score=False)
    needs = [t.when.needs.profile for t in RULES.tags if t.when and t.when.needs.profile]
    read = {n for need in needs for n in need.get("agg") or ()}  # what the tags' if: reads
    assert tags_only.ok and tags_only.fields == 20 * (1 + len(read))
    nothing = verify(con, RULES, oracle.read, as_of, aggregates=(), with_score=False, with_tags=False)
    assert nothing.ok and nothing.profiles == 20 and nothing.fields == 0  # every person is still found
