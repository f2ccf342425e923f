"""The SQL models against the plain-Python reference, on thousands of generated journeys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from analytics.attribution import MODELS, AttributionOptions, attribution
from analytics.channels import load_channel_rules
from analytics.rfm import RfmOptions, rfm
from analytics.touches import Conversion
from connectors.lake.query import connect
from tests.unit.analytics import reference
from tests.unit.analytics.journeys import DAY, Journeys, generate
from tests.unit.analytics.lakes import write_lake

RULES = load_channel_rules()
REVENUE = ("revenue", "total")


@pytest.fixture(scope="module")
def journeys() -> Journeys:
    return generate(2000)


@pytest.fixture(scope="module")
def con(journeys: Journeys, tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    root: Path = tmp_path_factory.mktemp("lake")
    write_lake(root, journeys.events, journeys.merges)
    return connect(root)


def _compare(got: dict[str, dict[str, float]], expected: dict[str, dict[str, float]]) -> None:
    assert set(k for k, row in got.items() if any(row.values())) == \
        set(k for k, row in expected.items() if any(row.values()))
    for key, row in got.items():
        for model in MODELS:
            for what in ("conversions", "revenue"):
                column = f"{model}_{what}"
                want = expected.get(key, {}).get(column, 0.0)
                assert row[column] == pytest.approx(want, rel=1e-9, abs=1e-6), (key, column)


_journeys_by_conversion: dict[str, tuple[list[reference.Conv], list[reference.Touch]]] = {}


def _reference_journeys(journeys: Journeys, event: str) -> tuple[list[reference.Conv], list[reference.Touch]]:
    if event not in _journeys_by_conversion:
        _journeys_by_conversion[event] = reference.journeys(journeys.events, journeys.merges, RULES, event,
                                                            REVENUE)
    return _journeys_by_conversion[event]


@pytest.mark.parametrize(("by", "lookback", "half_life", "conversion"), [
    ("channel", 30 * DAY, 7 * DAY, Conversion()),
    ("campaign", 30 * DAY, 7 * DAY, Conversion()),
    ("channel", 7 * DAY, 1 * DAY, Conversion()),
    ("campaign", 60 * DAY, 14 * DAY, Conversion("Signed Up")),
], ids=["channel", "campaign", "short-lookback", "leads-by-campaign"])
def test_attribution_equals_the_reference(journeys: Journeys, con: duckdb.DuckDBPyConnection, by: str,
                                          lookback: int, half_life: int, conversion: Conversion) -> None:
    table = attribution(con, AttributionOptions(conversion, by, lookback, half_life, RULES))
    got = {row.pop(by): row for row in table.to_pylist()}
    convs, touches = _reference_journeys(journeys, conversion.event)
    expected = reference.attribute(convs, touches, by=by, lookback=lookback, half_life=half_life)
    assert len(convs) > 100 and len(touches) > 1000  # a real data set, not an empty agreement
    _compare(got, expected)


def test_attribution_in_a_time_range_equals_the_reference(journeys: Journeys,
                                                          con: duckdb.DuckDBPyConnection) -> None:
    since, until = journeys.events[0]["timestamp"] + 40 * DAY, journeys.events[0]["timestamp"] + 80 * DAY
    conversion = Conversion(since_ms=since, until_ms=until)
    table = attribution(con, AttributionOptions(conversion=conversion, rules=RULES))
    got = {row.pop("channel"): row for row in table.to_pylist()}
    convs, touches = reference.journeys(journeys.events, journeys.merges, RULES, conversion.event, REVENUE,
                                        since=since, until=until)
    expected = reference.attribute(convs, touches, by="channel", lookback=30 * DAY, half_life=7 * DAY,
                                   since=since, until=until)
    _compare(got, expected)


def test_rfm_equals_the_reference(journeys: Journeys, con: duckdb.DuckDBPyConnection) -> None:
    got = rfm(con, RfmOptions(as_of_ms=journeys.end_ms)).to_pylist()
    expected: dict[str, dict[str, Any]] = reference.rfm(journeys.events, journeys.merges, "Order Completed",
                                                        REVENUE, journeys.end_ms)
    assert len(got) == len(expected) > 1000
    assert len({row["segment"] for row in got}) == 11  # every segment is exercised
    for row in got:
        want = expected[row["oneid"]]
        for name in ("last_order_ms", "frequency", "r", "f", "m", "rfm_score", "segment"):
            assert row[name] == want[name], (row["oneid"], name)
        assert row["monetary"] == pytest.approx(want["monetary"], abs=1e-6)
        assert row["recency_days"] == pytest.approx(want["recency_days"])
