"""Retention on hand-computed cases (the generated data set is in test_against_reference.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import duckdb
import pytest

from analytics.exceptions import AnalyticsError
from analytics.retention import retention
from tests.unit.analytics.lakegen import DAY, T0, LakeWriter

Open = Callable[[LakeWriter], duckdb.DuckDBPyConnection]
WEEK = 7 * DAY


def visits() -> LakeWriter:
    lake = LakeWriter()  # T0 is Monday 2024-01-01
    lake.page("ann", "/", T0)
    lake.page("ann", "/", T0 + WEEK)  # exactly a week later: week 1
    lake.page("bob", "/", T0 + 6 * DAY)  # Sunday: still the first cohort
    lake.track("bob", "Seen", T0 + 6 * DAY + 2 * WEEK + 1)  # on or after week 2 (so after week 1 too)
    lake.event("cat", "identify", T0)  # not activity
    lake.page("cat", "/", T0 + 2 * DAY)
    lake.event("cat", "identify", T0 + 30 * DAY)
    lake.page("dan", "/", T0 + WEEK)  # the second cohort
    lake.page("dan", "/", T0 + 2 * WEEK)
    lake.page("eve-2", "/", T0 + DAY)  # eve's other OneID, merged into her
    lake.page("eve", "/", T0 + DAY + WEEK)
    lake.merge("eve", "eve-2", T0 + 3 * DAY)
    return lake


def test_cohorts_by_first_activity_and_returned_on_or_after(open_lake: Open) -> None:
    result = retention(open_lake(visits()), weeks=2, as_of_ms=T0 + 60 * DAY)
    assert [(c.start, c.people, c.returned) for c in result.cohorts] == [
        (date(2024, 1, 1), 4, (4, 3, 1)), (date(2024, 1, 8), 1, (1, 1, 0))]
    assert result.cohorts[0].shares() == [1.0, 0.75, 0.25]


def test_cells_not_yet_complete_are_unknown_not_zero(open_lake: Open) -> None:
    result = retention(open_lake(visits()), weeks=2)  # as of the last activity: bob's, day 20
    assert result.as_of_ms == T0 + 20 * DAY + 1
    assert [c.returned for c in result.cohorts] == [(4, 3, None), (1, None, None)]
    assert result.table().to_pylist()[:3] == [
        {"cohort": "2024-01-01", "week": 0, "people": 4, "returned": 4, "share": 1.0},
        {"cohort": "2024-01-01", "week": 1, "people": 4, "returned": 3, "share": 0.75},
        {"cohort": "2024-01-01", "week": 2, "people": 4, "returned": None, "share": None}]
    assert result.grid().to_pylist()[0] == {"cohort": "2024-01-01", "people": 4, "week_0": "100.0%",
                                            "week_1": "75.0%", "week_2": ""}


def test_activity_types_decide_what_counts(open_lake: Open) -> None:
    result = retention(open_lake(visits()), weeks=4, activity_types=["identify"], as_of_ms=T0 + 90 * DAY)
    assert [(c.start, c.returned) for c in result.cohorts] == [(date(2024, 1, 1), (1, 1, 1, 1, 1))]


def test_an_empty_lake(open_lake: Open) -> None:
    result = retention(open_lake(LakeWriter()))
    assert (result.cohorts, result.as_of_ms) == ((), None)
    assert result.table().num_rows == 0


@pytest.mark.parametrize("weeks", [0, 105])
def test_weeks_are_bounded(open_lake: Open, weeks: int) -> None:
    with pytest.raises(AnalyticsError, match="weeks"):
        retention(open_lake(LakeWriter()), weeks=weeks)
