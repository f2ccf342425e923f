"""`touchstream attribution` and `touchstream rfm --dry-run` over a lake written without Kafka."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from apps.cli import cli
from schemas.testing import T0, event_record
from tests.unit.analytics.lakes import write_lake

SITE = "https://shop.example.cn"


def run(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env={"TOUCHSTREAM_LAKE_PATH": str(tmp_path)})
    return result.exit_code, result.stdout, result.stderr


def lake(tmp_path: Path) -> None:
    write_lake(tmp_path, [
        event_record("page", T0, oneid="a",
                     properties={"url": f"{SITE}/?utm_medium=cpc&utm_campaign=spring"}),
        event_record("track", T0 + 1, oneid="a", event="Order Completed", properties={"revenue": 40}),
        event_record("track", T0 + 2, oneid="b", event="Order Completed", properties={"total": "2.5"}),
    ])


def test_attribution_prints_every_model_side_by_side(tmp_path: Path) -> None:
    lake(tmp_path)
    code, out, _ = run(tmp_path, "attribution", "--format", "json")
    assert code == 0
    rows = {row["channel"]: row for row in map(json.loads, out.splitlines())}
    assert set(rows) == {"paid_search", "(none)"}
    assert rows["paid_search"]["markov_revenue"] == rows["paid_search"]["first_revenue"] == 40.0
    assert rows["(none)"]["linear_revenue"] == 2.5
    code, out, _ = run(tmp_path, "attribution", "--by", "campaign", "--lookback", "1h")
    assert code == 0 and out.splitlines()[1].startswith("campaign | first | last | linear | u_shaped")
    assert "spring" in out


def test_attribution_refuses_a_bad_duration_and_a_bad_rules_file(tmp_path: Path) -> None:
    lake(tmp_path)
    code, _, err = run(tmp_path, "attribution", "--lookback", "soon")
    assert code == 2 and "--lookback" in err
    bad = tmp_path / "rules.yaml"
    bad.write_text("rules: [{channel: x, colour: [red]}]\n")
    code, _, err = run(tmp_path, "attribution", "--rules", str(bad))
    assert code == 1 and "rules[0].colour" in err


def test_rfm_dry_run_prints_the_segment_counts(tmp_path: Path) -> None:
    lake(tmp_path)
    code, out, err = run(tmp_path, "rfm", "--dry-run", "--format", "csv")
    assert code == 0 and "dry run" in err
    lines = out.splitlines()
    assert lines[0] == "segment,r,fm,customers,share,revenue" and len(lines) == 12
    assert sum(int(line.split(",")[3]) for line in lines[1:]) == 2


def test_rfm_on_a_schedule_survives_a_failed_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from confluent_kafka import KafkaException

    from apps import rfm_job

    lake(tmp_path)
    real = rfm_job.run_rfm
    outcomes: list[str] = []

    def flaky(settings: Any, options: Any, *, send: bool) -> Any:
        outcomes.append("run")
        if len(outcomes) == 1:
            raise KafkaException("broker down")
        if len(outcomes) == 3:
            raise SystemExit(0)  # stop the schedule
        return real(settings, options, send=False)

    monkeypatch.setattr(rfm_job, "run_rfm", flaky)
    monkeypatch.setattr("time.sleep", lambda _s: None)
    code, out, err = run(tmp_path, "rfm", "--every", "60", "--format", "csv")
    assert code == 0 and outcomes == ["run", "run", "run"]
    assert "this run failed (broker down); trying again in 60 s" in err
    assert out.splitlines()[0] == "segment,r,fm,customers,share,revenue"
