"""Activation on hand-computed cases (the generated data set is in test_against_reference.py)."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pytest

from analytics.activation import Touch, activation
from analytics.exceptions import AnalyticsError
from tests.unit.analytics.lakegen import DAY, T0, LakeWriter

Open = Callable[[LakeWriter], duckdb.DuckDBPyConnection]
TAKEN = T0 + 60 * DAY  # the snapshot; the window is days 30 (excluded) to 60


def people() -> LakeWriter:
    lake = LakeWriter()
    for oneid in ("ann", "bob", "cat", "cat-2", "dan", "eve", "zed"):
        lake.page(oneid, "/", T0)
    lake.merge("cat", "cat-2", T0 + DAY)
    lake.trigger("ann", "mql_reached", T0 + 40 * DAY)
    lake.trigger("ann", "demo_requested", TAKEN)  # the window's end is in it
    lake.trigger("bob", "mql_reached", T0 + 10 * DAY)  # too early
    lake.trigger("cat-2", "mql_reached", T0 + 59 * DAY)  # cat's merged OneID
    lake.trigger("dan", "demo_requested", T0 + 30 * DAY)  # the window's start is not
    lake.trigger("zed", "mql_reached", T0 + 50 * DAY)  # not in the snapshot: not counted
    lake.segment("eve", "hot_leads", True, T0 + 10 * DAY)  # still in it when the window begins
    lake.segment("cat", "hot_leads", True, T0 + 10 * DAY)
    lake.segment("cat", "hot_leads", False, T0 + 20 * DAY)  # left before it
    lake.segment("ann", "big_spenders", True, T0 + 45 * DAY)
    lake.profile("ann", TAKEN, as_of=T0 + 50 * DAY, last_interaction=T0 + 50 * DAY)
    lake.profile("bob", TAKEN, as_of=T0 + 45 * DAY, last_interaction=T0 + 45 * DAY,
                 tags=["high_intent", "vip"])
    lake.profile("cat", TAKEN, as_of=T0 + 2 * DAY, last_interaction=T0 + 2 * DAY)
    lake.profile("dan", TAKEN, as_of=T0 + 55 * DAY, last_interaction=T0 + 55 * DAY)
    lake.profile("eve", TAKEN, as_of=T0 + 20 * DAY, last_interaction=T0 + 5 * DAY, tags=["high_intent"])
    return lake


def test_activated_and_dormant_shares(open_lake: Open) -> None:
    result = activation(open_lake(people()))
    assert result.as_of_ms == TAKEN
    assert (result.profiles, result.by_trigger, result.by_tag, result.by_segment) == (5, 2, 1, 2)
    assert (result.activated, result.dormant, result.active_untouched, result.asleep) == (4, 1, 1, 0)
    assert result.share(result.activated) == 0.8
    assert result.touches == (Touch("trigger", "mql_reached", 2), Touch("trigger", "demo_requested", 1),
                              Touch("tag", "high_intent", 1), Touch("tag", "vip", 1),
                              Touch("segment", "big_spenders", 1), Touch("segment", "hot_leads", 1))
    rows = {r["measure"]: (r["people"], r["share"]) for r in result.table().to_pylist()}
    assert rows["dormant"] == (1, 0.2)
    assert rows["trigger: mql_reached"] == (2, 0.4)


def test_a_longer_window_and_another_moment(open_lake: Open) -> None:
    result = activation(open_lake(people()), window="60d", as_of_ms=T0 + 50 * DAY)
    # triggers of days 10 to 40 (ann, bob, dan; not cat's on day 59); bob's and eve's tags; cat in
    # hot_leads from day 10 to 20, eve from day 10 on, ann in big_spenders on day 45
    assert (result.by_trigger, result.by_tag, result.by_segment, result.activated) == (3, 2, 3, 5)


def test_no_snapshot_is_an_error_that_says_what_to_run(open_lake: Open) -> None:
    with pytest.raises(AnalyticsError, match="touchstream lake snapshot"):
        activation(open_lake(LakeWriter()))
