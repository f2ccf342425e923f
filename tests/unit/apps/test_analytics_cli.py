"""`touchstream funnel | retention | activation` over a lake written without Kafka."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from apps.cli import cli
from tests.unit.analytics.lakegen import DAY, T0, LakeWriter


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    lake = LakeWriter()
    lake.page("ann", "/pricing", T0, properties={"utm_source": "google"})
    lake.track("ann", "Signed Up", T0 + DAY)
    lake.page("bob", "/pricing", T0)
    lake.page("bob", "/", T0 + 8 * DAY)
    lake.page("cat", "/", T0 + 15 * DAY)  # the first cohort's week 1 is complete by then
    lake.event("ann", "identify", T0, identifiers=[{"type": "email", "value": "ann@example.cn"}])
    lake.event("bob", "identify", T0, identifiers=[{"type": "email", "value": "bob@example.cn"}])
    lake.trigger("ann", "mql_reached", T0 + DAY)
    lake.track("ann", "Order Completed", T0 + 2 * DAY)
    lake.profile("ann", T0 + 9 * DAY, as_of=T0 + DAY, last_interaction=T0 + DAY, tags=["high_intent"])
    lake.profile("bob", T0 + 9 * DAY, as_of=T0 + 8 * DAY, last_interaction=T0 + 8 * DAY)
    return lake.write(tmp_path / "lake")


def run(lake: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env={"TOUCHSTREAM_LAKE_PATH": str(lake)})
    assert result.exit_code == 0, result.output
    return result.output


def test_funnel_as_json_lines(lake: Path) -> None:
    rows = [json.loads(line) for line in run(lake, "funnel", "page:/pricing", "Signed Up", "--window", "2d",
                                             "--by", "utm_source", "--format", "json").splitlines()]
    assert [(r["group"], r["step"], r["people"]) for r in rows] == [
        ("(all)", 1, 2), ("(all)", 2, 1), ("(none)", 1, 1), ("(none)", 2, 0),  # equals: by name
        ("google", 1, 1), ("google", 2, 1)]
    assert rows[1]["median_s_from_previous"] == 86400.0


def test_retention_grid_and_csv(lake: Path) -> None:
    assert "2024-01-01 | 2      | 100.0% | 50.0%" in run(lake, "retention", "--weeks", "1")
    assert run(lake, "retention", "--weeks", "1", "--format", "csv").splitlines()[:3] == [
        "cohort,week,people,returned,share", "2024-01-01,0,2,2,1.0", "2024-01-01,1,2,1,0.5"]


def test_activation_table(lake: Path) -> None:
    out = run(lake, "activation")
    assert "activated                     | 1      | 0.5" in out
    assert "tag: high_intent" in out


def test_score_bands_from_the_default_rules_thresholds(lake: Path) -> None:
    assert run(lake, "score-bands", "--format", "csv").splitlines() == [
        "band,leads,converted,conversion_rate,lift,median_days_to_convert",
        "<= 60,1,0,0.0,0.0,", "> 60,1,1,1.0,2.0,1.0"]


def test_a_bad_question_is_a_clean_error(lake: Path) -> None:
    result = CliRunner().invoke(cli, ["funnel", "page", "--window", "soon"],
                                env={"TOUCHSTREAM_LAKE_PATH": str(lake)})
    assert result.exit_code == 1
    assert "Error: window: not a duration" in result.output
