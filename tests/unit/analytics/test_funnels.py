"""Funnels on hand-computed cases (the generated data set is in test_against_reference.py)."""

from __future__ import annotations

from collections.abc import Callable

import duckdb
import pytest

from analytics.exceptions import AnalyticsError
from analytics.funnels import funnel
from analytics.steps import parse_step
from tests.unit.analytics.lakegen import DAY, T0, LakeWriter

H = 3_600_000
Open = Callable[[LakeWriter], duckdb.DuckDBPyConnection]
STEPS = ["page:/pricing", "Signed Up", "Order Completed"]


def shop() -> LakeWriter:
    lake = LakeWriter()
    lake.page("ann", "/pricing/team", T0, properties={"utm_source": "google"})
    lake.track("ann", "Signed Up", T0 + H)
    lake.track("ann", "Order Completed", T0 + 2 * DAY)
    lake.track("bob", "Signed Up", T0)  # before the first step: not counted
    lake.page("bob", "/pricing", T0 + DAY, properties={"utm_source": "google"})
    lake.page("cat", "/pricing", T0)
    lake.track("cat", "Signed Up", T0 + 8 * DAY)  # outside the first attempt's window...
    lake.page("cat", "/pricing", T0 + 10 * DAY, properties={"utm_source": "wechat"})
    lake.track("cat", "Signed Up", T0 + 10 * DAY + 2 * H)  # ...inside the second's
    lake.track("dan", "Signed Up", T0)  # never entered
    lake.page("eve-2", "/pricing", T0)  # eve's other OneID, merged into eve
    lake.track("eve", "Signed Up", T0 + 3 * H)
    lake.merge("eve", "eve-2", T0 + 4 * DAY)
    lake.page("fay", "/docs", T0)  # another path
    return lake


def counts(result_funnel) -> list[tuple[int, float | None]]:  # type: ignore[no-untyped-def]
    return [(s.people, s.median_ms) for s in result_funnel.steps]


def test_sequential_steps_within_the_window_best_attempt_and_merged_identities(open_lake: Open) -> None:
    result = funnel(open_lake(shop()), STEPS, window="7d")
    assert counts(result.overall) == [(4, None), (3, 2 * H), (1, 2 * DAY - H)]
    rows = result.overall.rows()
    assert [r["conversion"] for r in rows] == [1.0, 0.75, 0.25]
    assert [r["step_conversion"] for r in rows] == [1.0, 0.75, 1 / 3]
    assert [(r["dropped"], r["drop_off"]) for r in rows] == [(0, 0.0), (1, 0.25), (2, 2 / 3)]
    assert rows[1]["median_s_from_previous"] == 7200.0


def test_a_wider_window_lets_the_first_attempt_count(open_lake: Open) -> None:
    result = funnel(open_lake(shop()), STEPS[:2], window=9 * DAY)
    assert counts(result.overall) == [(4, None), (3, 3 * H)]  # cat's gap is now 8 days: 1h, 3h, 8d


def test_each_step_strictly_later_so_one_event_never_counts_for_two(open_lake: Open) -> None:
    lake = LakeWriter()
    lake.page("ann", "/a", T0)
    lake.page("bob", "/a", T0)
    lake.page("bob", "/b", T0)  # simultaneous: neither follows the other
    lake.page("cat", "/a", T0)
    lake.page("cat", "/b", T0 + 1)
    assert counts(funnel(open_lake(lake), ["page", "page"]).overall) == [(3, None), (1, 1.0)]
    assert counts(funnel(open_lake(lake), ["page", "page"], any_order=True).overall) == [(3, None), (3, 0.0)]


def test_any_order(open_lake: Open) -> None:
    lake = LakeWriter()
    lake.track("ann", "Demo Requested", T0)
    lake.track("ann", "Signed Up", T0 + DAY)
    lake.track("bob", "Signed Up", T0)
    lake.track("bob", "Demo Requested", T0 + 2 * DAY)
    lake.track("cat", "Demo Requested", T0)  # only the second step: not in the funnel
    con = open_lake(lake)
    steps = ["Signed Up", "Demo Requested"]
    assert counts(funnel(con, steps).overall) == [(2, None), (1, 2 * DAY)]
    # ann: both within the window from her demo request, complete at the signup (no wait after it)
    assert counts(funnel(con, steps, any_order=True).overall) == [(2, None), (2, DAY)]
    assert counts(funnel(con, steps, any_order=True, window=DAY).overall) == [(2, None), (1, 0.0)]


def test_breakdown_by_a_property_of_the_best_attempts_first_event(open_lake: Open) -> None:
    result = funnel(open_lake(shop()), STEPS, by="utm_source")
    groups = {f.group: [s.people for s in f.steps] for f in result.groups}
    assert groups == {"google": [2, 1, 1], "wechat": [1, 1, 0], "(none)": [1, 1, 0]}
    assert [f.group for f in result.groups] == ["google", "(none)", "wechat"]  # most people first
    assert [s.people for s in result.overall.steps] == [4, 3, 1]
    table = result.table().to_pylist()
    assert table[0] == {"group": "(all)", "step": 1, "name": "page:/pricing", "people": 4, "conversion": 1.0,
                        "step_conversion": 1.0, "dropped": 0, "drop_off": 0.0, "median_s_from_previous": None}
    assert len(table) == 4 * 3


def test_an_empty_lake_has_an_empty_funnel(open_lake: Open) -> None:
    result = funnel(open_lake(LakeWriter()), STEPS, by="utm_source")
    assert counts(result.overall) == [(0, None)] * 3
    assert result.groups == ()
    assert result.overall.rows()[1]["conversion"] is None


def test_events_delivered_twice_count_once(open_lake: Open) -> None:
    lake = LakeWriter()
    lake.track("ann", "Signed Up", T0)
    lake.events.append(dict(lake.track("ann", "Order Completed", T0 + H)))
    lake.track("bob", "Signed Up", T0)
    result = funnel(open_lake(lake), ["Signed Up", "Order Completed", "Order Completed"])
    assert counts(result.overall) == [(2, None), (1, H), (0, None)]


@pytest.mark.parametrize(("text", "expected"), [
    ("page", ("page", None, None)), ("page:Pricing", ("page", "Pricing", None)),
    ("page:/pricing", ("page", None, "/pricing")), ("Order Completed", ("track", "Order Completed", None)),
    ("track:Order Completed", ("track", "Order Completed", None)), ("screen:Cart", ("screen", "Cart", None)),
    ("Checkout: step 2", ("track", "Checkout: step 2", None)),
])
def test_step_spelling(text: str, expected: tuple) -> None:
    step = parse_step(text)
    assert (step.type, step.name, step.path_prefix) == expected


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"steps": []}, "1 to 16 steps"), ({"steps": [" "]}, "cannot be empty"),
    ({"steps": ["page:"]}, "missing"),
    ({"window": "soon"}, "window"), ({"window": 0}, "longer than zero"), ({"by": "a..b"}, "empty name"),
])
def test_bad_questions_are_analytics_errors(open_lake: Open, kwargs: dict, message: str) -> None:
    args = {"steps": STEPS} | kwargs
    with pytest.raises(AnalyticsError, match=message):
        funnel(open_lake(LakeWriter()), args.pop("steps"), **args)


def test_quotes_in_a_step_or_property_are_data_not_sql(open_lake: Open) -> None:
    lake = LakeWriter()
    lake.track("ann", "it's'; DROP TABLE x; --", T0, properties={"o'k": "v"})
    result = funnel(open_lake(lake), ["it's'; DROP TABLE x; --"], by="o'k")
    assert [(f.group, f.entered) for f in result.groups] == [("v", 1)]


def test_an_unmerge_moves_the_events_it_split_off(open_lake: Open) -> None:
    lake = LakeWriter()
    lake.page("ann", "/pricing", T0, identifiers=[{"type": "anonymous_id", "value": "a-1"}])
    lake.track("ann", "Signed Up", T0 + H, identifiers=[{"type": "email", "value": "ann@example.cn"}])
    assert counts(funnel(open_lake(lake), ["page", "Signed Up"]).overall) == [(1, None), (1, H)]
    lake.merge("ann", "ann-2", T0 + DAY)
    lake.merges[-1] |= {"kind": "unmerge", "identifiers": [{"type": "anonymous_id", "value": "a-1"}]}
    # the page view was another person's: one entered, nobody signed up after their own page view
    assert counts(funnel(open_lake(lake), ["page", "Signed Up"]).overall) == [(1, None), (0, None)]
