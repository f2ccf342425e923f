"""Funnels, retention, activation and score bands against the plain-Python reference
(reference_questions.py) on thousands of generated journeys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from analytics.activation import activation
from analytics.funnels import funnel
from analytics.predictiveness import predictiveness
from analytics.retention import retention
from connectors.lake.query import connect
from tests.unit.analytics import reference_questions as reference
from tests.unit.analytics.lakegen import DAY, LakeWriter, journeys

PEOPLE = 3000


@pytest.fixture(scope="module")
def data() -> LakeWriter:
    return journeys(PEOPLE, seed=7)


@pytest.fixture(scope="module")
def con(data: LakeWriter, tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    con = connect(data.write(Path(tmp_path_factory.mktemp("journeys"))))
    yield con
    con.close()


def test_the_data_set_is_big_enough_to_mean_something(data: LakeWriter) -> None:
    assert len(reference.people(data)) == PEOPLE
    assert len(data.events) > 4 * PEOPLE
    assert len(data.merges) > PEOPLE // 10


@pytest.mark.parametrize(("steps", "window", "any_order", "by"), [
    (["page", "Signed Up", "Trial Started", "Demo Requested", "Order Completed"], 7 * DAY, False, None),
    (["page:/pricing", "Signed Up", "Order Completed"], 3 * DAY, False, "utm_source"),
    (["Signed Up", "Demo Requested", "Trial Started"], 5 * DAY, True, None),
    (["page", "page", "page:/features"], 2 * DAY, True, "utm_source"),
    (["page", "page", "page:/pricing", "Signed Up"], 6 * DAY, False, None),
])
def test_funnel(data: LakeWriter, con: duckdb.DuckDBPyConnection, steps: list[str], window: int,
                any_order: bool, by: str | None) -> None:
    expected = reference.funnel(data, steps, window, any_order, by)
    result = funnel(con, steps, window=window, any_order=any_order, by=by)
    got = {f.group: [(s.people, s.median_ms) for s in f.steps] for f in (result.overall, *result.groups)}
    assert got == expected
    assert expected["(all)"][-1][0] > 10  # the last step is reached by enough people to compare medians


def test_retention(data: LakeWriter, con: duckdb.DuckDBPyConnection) -> None:
    expected = reference.retention(data, weeks=10)
    result = retention(con, weeks=10)
    assert [(c.start.isoformat(), c.people, list(c.returned)) for c in result.cohorts] == expected
    assert len(expected) >= 12 and any(cells[5] for _, _, cells in expected)


def test_activation(data: LakeWriter, con: duckdb.DuckDBPyConnection) -> None:
    expected = reference.activation(data, 30 * DAY)
    result = activation(con)
    got = {"profiles": result.profiles, "by_trigger": result.by_trigger, "by_tag": result.by_tag,
           "by_segment": result.by_segment,
           "activated": result.activated, "active_untouched": result.active_untouched,
           "rules": {t.name: t.people for t in result.touches if t.kind == "trigger"}}
    assert got == expected
    assert 0 < result.activated < result.profiles and result.active_untouched > 0 and result.by_segment > 0


def test_predictiveness(data: LakeWriter, con: duckdb.DuckDBPyConnection) -> None:
    thresholds = {"lead_warm": 30.0, "mql_reached": 60.0}
    expected = reference.predictiveness(data, thresholds, "Order Completed")
    result = predictiveness(con, thresholds)
    assert [(b.low, b.leads, b.converted, b.median_ms_to_convert) for b in result.bands] == expected
    assert all(leads > 50 and 0 < converted < leads for _, leads, converted, _ in expected)
