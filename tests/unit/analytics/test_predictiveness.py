"""Score bands on hand-computed cases (the generated data set is in test_against_reference.py)."""

from __future__ import annotations

from collections.abc import Callable

import duckdb

from analytics.predictiveness import predictiveness, score_thresholds
from profiles.rules import load_rules_file
from profiles.rules.reload import DEFAULT_RULES_PATH
from tests.unit.analytics.lakegen import DAY, T0, LakeWriter

Open = Callable[[LakeWriter], duckdb.DuckDBPyConnection]
RULES = {"lead_warm": 30.0, "mql_reached": 60.0}


def known(lake: LakeWriter, oneid: str) -> None:
    lake.event(oneid, "identify", T0, identifiers=[{"type": "email", "value": f"{oneid}@example.cn"}])


def leads() -> LakeWriter:
    lake = LakeWriter()
    for oneid in ("ann", "bob", "cat", "dan", "eve", "gus"):
        known(lake, oneid)
    lake.page("cat-2", "/", T0)
    lake.merge("cat", "cat-2", T0 + DAY)
    lake.trigger("ann", "lead_warm", T0 + DAY)
    lake.trigger("ann", "mql_reached", T0 + 2 * DAY)
    lake.track("ann", "Order Completed", T0 + 5 * DAY)
    lake.trigger("bob", "lead_warm", T0 + DAY)
    lake.track("bob", "Order Completed", T0 + 3 * DAY)
    lake.trigger("bob", "mql_reached", T0 + 4 * DAY)  # after converting: not the band he converted from
    lake.trigger("cat-2", "mql_reached", T0 + DAY)  # cat's merged OneID
    lake.track("dan", "Order Completed", T0 + 2 * DAY)
    lake.event("fay", "identify", T0, identifiers=[{"type": "anonymous_id", "value": "a-1"}])  # not a lead
    lake.trigger("fay", "mql_reached", T0 + DAY)
    lake.track("fay", "Order Completed", T0 + 2 * DAY)
    lake.trigger("gus", "lead_warm", T0 + DAY)
    lake.trigger("gus", "mql_reached", T0 + 3 * DAY)  # crossed by the conversion itself: not before it
    lake.track("gus", "Order Completed", T0 + 3 * DAY)
    lake.trigger("gus", "pricing_dwell", T0 + DAY)  # another kind of trigger
    return lake


def test_bands_from_the_highest_threshold_crossed_before_converting(open_lake: Open) -> None:
    result = predictiveness(open_lake(leads()), RULES)
    assert [(b.label, b.leads, b.converted, b.median_days_to_convert) for b in result.bands] == [
        ("<= 30", 2, 1, None), ("> 30 to 60", 2, 2, 2.0), ("> 60", 2, 1, 3.0)]
    assert (result.leads, result.converted) == (6, 4)
    assert result.table().to_pylist()[1] == {
        "band": "> 30 to 60", "leads": 2, "converted": 2, "conversion_rate": 1.0, "lift": 1.5,
        "median_days_to_convert": 2.0}
    assert result.source() == "score_crossed triggers: lead_warm (> 30), mql_reached (> 60)"


def test_as_of_and_another_conversion(open_lake: Open) -> None:
    result = predictiveness(open_lake(leads()), RULES, conversion="identify", as_of_ms=T0 + DAY)
    # everyone converted at T0 by identifying, before any crossing
    assert [(b.leads, b.converted) for b in result.bands] == [(6, 6), (0, 0), (0, 0)]
    result = predictiveness(open_lake(leads()), RULES, as_of_ms=T0 + 2 * DAY)
    # ann: mql, not yet an order
    assert [(b.leads, b.converted) for b in result.bands] == [(2, 1), (2, 0), (2, 0)]


def test_without_score_crossed_rules_one_band(open_lake: Open) -> None:
    result = predictiveness(open_lake(leads()), {})
    assert [(b.label, b.leads, b.converted) for b in result.bands] == [("all", 6, 4)]
    assert result.source() == "no score_crossed rule: one band"


def test_thresholds_come_from_the_rules_file() -> None:
    assert score_thresholds(load_rules_file(DEFAULT_RULES_PATH)) == {"mql_reached": 60.0}
