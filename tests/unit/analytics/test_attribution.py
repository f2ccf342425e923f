"""Every attribution model on journeys small enough to compute by hand."""

from __future__ import annotations

from typing import Any

import pytest

from analytics.attribution import MODELS, NO_TOUCH, AttributionOptions, attribution, long_form
from analytics.attribution.markov import Transition, removal_effects
from analytics.touches import Conversion
from schemas.testing import T0, event_record
from tests.unit.analytics.conftest import Lake

DAY = 86_400_000
SITE = "https://shop.example.cn"
UTM = {"paid": "utm_source=baidu&utm_medium=cpc", "email": "utm_medium=email", "social": "utm_medium=social"}
CHANNEL = {"paid": "paid_search", "email": "email", "social": "social"}


def touch(kind: str, at: int, oneid: str = "p", campaign: str | None = None) -> dict[str, Any]:
    query = UTM[kind] + (f"&utm_campaign={campaign}" if campaign else "")
    return event_record("page", at, oneid=oneid, properties={"url": f"{SITE}/?{query}"})


def order(at: int, revenue: float, oneid: str = "p") -> dict[str, Any]:
    return event_record("track", at, oneid=oneid, event="Order Completed", properties={"revenue": revenue})


def credits(con: Any, **options: Any) -> dict[str, dict[str, float]]:
    table = attribution(con, AttributionOptions(**options))
    key = table.column_names[0]
    return {row.pop(key): row for row in table.to_pylist()}


def test_three_touches_under_every_model(make_lake: Lake) -> None:
    con = make_lake([touch("paid", T0), touch("social", T0 + DAY), touch("email", T0 + 2 * DAY),
                order(T0 + 3 * DAY, 100.0)])
    got = credits(con)
    paid, social, email = got["paid_search"], got["social"], got["email"]
    assert (paid["first_conversions"], social["first_conversions"], email["first_conversions"]) == (1, 0, 0)
    assert (paid["last_conversions"], social["last_conversions"], email["last_conversions"]) == (0, 0, 1)
    assert paid["first_revenue"] == email["last_revenue"] == 100.0
    for row in (paid, social, email):
        assert row["linear_conversions"] == pytest.approx(1 / 3)
        assert row["markov_conversions"] == pytest.approx(1 / 3)  # one path: every removal loses it all
    assert (paid["u_shaped_conversions"], social["u_shaped_conversions"], email["u_shaped_conversions"]) == \
        pytest.approx((0.4, 0.2, 0.4))
    # time decay, half-life 7 d, ages counted from the last touch: 2 d, 1 d, 0 d
    weights = [2 ** (-2 / 7), 2 ** (-1 / 7), 1.0]
    assert [got[c]["time_decay_revenue"] for c in ("paid_search", "social", "email")] == \
        pytest.approx([100 * w / sum(weights) for w in weights])
    assert NO_TOUCH not in got


def test_one_and_two_touches_u_shaped(make_lake: Lake) -> None:
    con = make_lake([touch("paid", T0, "a"), order(T0 + 1, 10.0, "a"),
                touch("paid", T0, "b"), touch("email", T0 + 1, "b"), order(T0 + 2, 20.0, "b")])
    got = credits(con)
    assert got["paid_search"]["u_shaped_conversions"] == pytest.approx(1.5)  # a: 1, b: 0.5
    assert got["paid_search"]["u_shaped_revenue"] == pytest.approx(10 + 10)
    assert got["email"]["u_shaped_conversions"] == pytest.approx(0.5)


def test_the_lookback_includes_its_boundary_and_nothing_before(make_lake: Lake) -> None:
    con = make_lake([touch("paid", T0), touch("email", T0 + DAY), order(T0 + 31 * DAY, 50.0)])
    got = credits(con)  # paid is 31 d before: outside; email exactly 30 d before: inside
    assert got["email"]["linear_conversions"] == 1.0
    assert got.get("paid_search", {}).get("linear_conversions", 0.0) == 0.0
    assert credits(con, lookback_ms=31 * DAY)["paid_search"]["first_conversions"] == 1.0


def test_conversions_without_a_touch_are_their_own_row_under_every_model(make_lake: Lake) -> None:
    con = make_lake([order(T0, 10.0, "a"), order(T0 + 1, 5.0, "b"),
                touch("paid", T0, "c"), order(T0 + 2, 1.0, "c")])
    table = attribution(con)
    assert table.column("channel").to_pylist()[-1] == NO_TOUCH
    got = credits(con)
    for model in MODELS:
        assert got[NO_TOUCH][f"{model}_conversions"] == 2.0
        assert got[NO_TOUCH][f"{model}_revenue"] == 15.0
        assert sum(row[f"{model}_conversions"] for row in got.values()) == pytest.approx(3.0)
        assert sum(row[f"{model}_revenue"] for row in got.values()) == pytest.approx(16.0)


def test_identity_follows_merges(make_lake: Lake) -> None:
    # the anonymous visitor clicked an ad, signed in (anon -> user), and the user ordered
    con = make_lake([touch("paid", T0, "anon"), order(T0 + DAY, 30.0, "user")],
                    merges=[("user", "anon", T0 + 1)])
    assert credits(con)["paid_search"]["last_revenue"] == 30.0


def test_an_unmerge_moves_the_touches_it_split_off(make_lake: Lake) -> None:
    # Ann's profile took Bob's email and with it Bob's ad click; an operator split Bob off
    email = [{"type": "email", "value": "bob@x.cn"}]
    click = event_record("page", T0, oneid="ann", identifiers=email,
                         properties={"url": f"{SITE}/?{UTM['paid']}"})
    split = {"survivor": "ann", "merged": "bob", "message_id": "", "timestamp": T0 + 10, "identifiers": email,
             "reason": "operator_unmerge", "kind": "unmerge"}
    con = make_lake([click, order(T0 + DAY, 9.0, "bob"), order(T0 + DAY, 1.0, "ann")], merges=[split])
    got = credits(con)
    assert got["paid_search"]["first_revenue"] == 9.0 and got[NO_TOUCH]["first_revenue"] == 1.0


def test_ties_in_time_are_broken_by_source_then_message_id(make_lake: Lake) -> None:
    first = event_record("page", T0, oneid="p", source="a", message_id="z",
                         properties={"url": f"{SITE}/?{UTM['email']}"})
    second = event_record("page", T0, oneid="p", source="b", message_id="a",
                          properties={"url": f"{SITE}/?{UTM['paid']}"})
    con = make_lake([second, first, order(T0 + 1, 1.0)])
    got = credits(con)
    assert got["email"]["first_conversions"] == 1.0 and got["paid_search"]["last_conversions"] == 1.0


def test_a_conversion_delivered_twice_counts_once(make_lake: Lake) -> None:
    once = order(T0 + 1, 10.0)
    con = make_lake([touch("paid", T0), once, dict(once)])
    assert credits(con)["paid_search"]["linear_conversions"] == 1.0


def test_markov_removal_effects_by_hand(make_lake: Lake) -> None:
    # p1: paid -> order; p2: email -> order; p3: paid, email, no order.
    # start: paid 2/3, email 1/3; paid: convert 1/2, email 1/2; email: convert 1/2, null 1/2.
    # P = 2/3 * (1/2 + 1/2 * 1/2) + 1/3 * 1/2 = 2/3. Without paid: 1/3 * 1/2 = 1/6, effect 3/4;
    # without email: 2/3 * 1/2 = 1/3, effect 1/2. Shares 3/5 and 2/5 of 2 conversions, 30 revenue.
    con = make_lake([touch("paid", T0, "p1"), order(T0 + 1, 10.0, "p1"),
                touch("email", T0, "p2"), order(T0 + 1, 20.0, "p2"),
                touch("paid", T0, "p3"), touch("email", T0 + DAY, "p3")])
    got = credits(con)
    assert got["paid_search"]["markov_conversions"] == pytest.approx(1.2)
    assert got["email"]["markov_conversions"] == pytest.approx(0.8)
    assert got["paid_search"]["markov_revenue"] == pytest.approx(18.0)
    # the same chain from its transitions
    steps = [Transition(None, "paid", False, 2), Transition(None, "email", False, 1),
             Transition("paid", None, True, 1), Transition("paid", "email", False, 1),
             Transition("email", None, True, 1), Transition("email", None, False, 1)]
    assert removal_effects(steps) == pytest.approx({"paid": 0.75, "email": 0.5})


def test_markov_lost_journeys_split_at_conversions(make_lake: Lake) -> None:
    # email, order, then 40 days later paid without an order: two journeys, one lost
    con = make_lake([touch("email", T0), order(T0 + 1, 5.0), touch("paid", T0 + 40 * DAY)])
    got = credits(con)
    assert got["email"]["markov_conversions"] == pytest.approx(1.0)
    assert got["paid_search"]["markov_conversions"] == 0.0


def test_touches_without_any_conversion_show_zeros(make_lake: Lake) -> None:
    assert removal_effects([]) == {}
    got = credits(make_lake([touch("paid", T0)]))
    assert set(got) == {"paid_search"}
    assert set(got["paid_search"].values()) == {0.0}


def test_by_campaign_names_touches_without_one_by_their_channel(make_lake: Lake) -> None:
    con = make_lake([touch("paid", T0, campaign="spring"), touch("email", T0 + 1), order(T0 + 2, 8.0)])
    got = credits(con, by="campaign")
    assert got["spring"]["first_revenue"] == 8.0 and got["(email)"]["last_revenue"] == 8.0


def test_a_time_range_counts_only_its_conversions(make_lake: Lake) -> None:
    con = make_lake([touch("paid", T0), order(T0 + 1, 1.0),
                touch("email", T0 + 10 * DAY), order(T0 + 10 * DAY + 1, 2.0)])
    got = credits(con, conversion=Conversion(since_ms=T0 + 5 * DAY))  # the paid touch still counts
    assert got["paid_search"]["first_revenue"] == 2.0 and got["email"]["last_revenue"] == 2.0
    assert sum(row["linear_conversions"] for row in got.values()) == 1.0


def test_lead_conversions_without_revenue(make_lake: Lake) -> None:
    con = make_lake([touch("social", T0), event_record("track", T0 + 1, oneid="p", event="Signed Up")])
    got = credits(con, conversion=Conversion("Signed Up"))
    assert got["social"]["first_conversions"] == 1.0 and got["social"]["first_revenue"] == 0.0


def test_long_form_has_a_row_per_key_and_model(make_lake: Lake) -> None:
    table = long_form(attribution(make_lake([touch("paid", T0), order(T0 + 1, 3.0)])))
    assert table.num_rows == len(MODELS)
    assert set(table.column("model").to_pylist()) == set(MODELS)
    assert set(table.column("revenue").to_pylist()) == {3.0}


@pytest.mark.parametrize("bad", [{"by": "colour"}, {"lookback_ms": 0}, {"half_life_ms": -1}])
def test_options_refuse_nonsense(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AttributionOptions(**bad)


def test_a_touch_at_the_conversions_own_moment_counts_for_it_however_it_sorts(make_lake: Lake) -> None:
    # same millisecond: the touch's source sorts after the order's, it still precedes the order
    paid = event_record("page", T0, oneid="p", source="z", properties={"url": f"{SITE}/?{UTM['paid']}"})
    con = make_lake([event_record("track", T0, oneid="p", source="a", event="Order Completed",
                                  properties={"revenue": 5.0}), paid])
    got = credits(con)
    assert got["paid_search"]["first_revenue"] == got["paid_search"]["last_revenue"] == 5.0
    assert got["paid_search"]["markov_conversions"] == 1.0  # its journey converted: none was lost
    assert NO_TOUCH not in got


def test_by_campaign_a_campaign_spelled_like_a_channel_key_is_that_key(make_lake: Lake) -> None:
    con = make_lake([touch("email", T0, "a", campaign="(email)"), order(T0 + 1, 2.0, "a"),
                     touch("email", T0, "b"), order(T0 + 1, 3.0, "b")])
    got = credits(con, by="campaign")
    assert set(got) == {"(email)"}
    assert got["(email)"]["first_conversions"] == 2.0 and got["(email)"]["markov_revenue"] == 5.0
