"""RFM scores, the segment grid and the traits sent back to profiles, by hand."""

from __future__ import annotations

import json
from typing import Any

import pytest

from analytics.rfm import SEGMENTS, WIN_BACK, RfmOptions, rfm, segment_counts, segment_of
from analytics.rfm_traits import SOURCE, changes, identify_event, last_sent, publish
from analytics.touches import Conversion
from profiles.engine import Engine
from profiles.rules import DEFAULT_RULES_PATH, load_rules_file
from profiles.state import ProfileState
from schemas.codec import default_registry
from schemas.testing import T0, event_record
from tests.unit.analytics.conftest import Lake

DAY = 86_400_000


def order(oneid: str, at: int, revenue: Any = 10.0, **kw: Any) -> dict[str, Any]:
    return event_record("track", at, oneid=oneid, event="Order Completed", properties={"revenue": revenue},
                        **kw)


def scores(con: Any, **options: Any) -> dict[str, dict[str, Any]]:
    return {row["oneid"]: row for row in rfm(con, RfmOptions(**options)).to_pylist()}


def test_ten_distinct_people_fill_each_quintile_twice(make_lake: Lake) -> None:
    # person i ordered i + 1 times, the last one i days after T0, for (i + 1) * 10 each
    events = [order(f"p{i}", T0 + i * DAY - k, revenue=(i + 1) * 10.0)
              for i in range(10) for k in range(i + 1)]
    got = scores(make_lake(events), as_of_ms=T0 + 20 * DAY)
    for i in range(10):
        row = got[f"p{i}"]
        assert (row["r"], row["f"], row["m"]) == (i // 2 + 1,) * 3
        assert row["frequency"] == i + 1 and row["monetary"] == pytest.approx((i + 1) ** 2 * 10)
        assert row["recency_days"] == pytest.approx(20 - i)
        assert row["rfm_score"] == (i // 2 + 1) * 111
    assert got["p9"]["segment"] == "champions" and got["p0"]["segment"] == "lost"
    assert got["p5"]["segment"] == "need_attention"  # 3, 3, 3


def test_equal_values_share_a_score(make_lake: Lake) -> None:
    events = [order(p, T0, revenue=5.0) for p in "abcd"] + [order("e", T0 + DAY, revenue=50.0),
                                                           order("e", T0 + DAY - 1, revenue=50.0)]
    got = scores(make_lake(events), as_of_ms=T0 + 2 * DAY)
    assert {got[p]["f"] for p in "abcd"} == {1} and got["e"]["f"] == 5  # rank 5 of 5: 1 + 5 * 4 // 5
    assert {got[p]["r"] for p in "abcd"} == {1} and got["e"]["r"] == 5
    assert got["e"]["segment"] == "champions" and got["a"]["segment"] == "lost"


def test_orders_follow_merges_and_count_once(make_lake: Lake) -> None:
    once = order("anon", T0, revenue=7.0)
    con = make_lake([once, dict(once), order("user", T0 + DAY, revenue=3.0)],
                    merges=[("user", "anon", T0 + 1)])
    got = scores(con, as_of_ms=T0 + 2 * DAY)
    assert list(got) == ["user"]
    user = got["user"]
    assert (user["frequency"], user["monetary"], user["last_order_ms"]) == (2, 10.0, T0 + DAY)


def test_revenue_fields_event_name_and_as_of(make_lake: Lake) -> None:
    con = make_lake([
        event_record("track", T0, oneid="a", event="Purchase", properties={"amount": "12.5"}),
        event_record("track", T0 + 1, oneid="a", event="Purchase", properties={"amount": "n/a", "total": 1}),
        event_record("track", T0 + 5 * DAY, oneid="a", event="Purchase", properties={"amount": 100}),
        order("a", T0, revenue=1000.0),
    ])
    got = scores(con, conversion=Conversion("Purchase", ("amount", "total")), as_of_ms=T0 + DAY)
    assert (got["a"]["frequency"], got["a"]["monetary"]) == (2, 13.5)  # the later one is after as_of


def test_no_order_no_row(make_lake: Lake) -> None:
    assert rfm(make_lake([event_record("page", T0, oneid="a")]), RfmOptions(as_of_ms=T0)).num_rows == 0


def test_every_cell_of_the_grid_has_exactly_one_segment() -> None:
    for r in range(1, 6):
        for fm in range(1, 6):
            assert sum(s.holds(r, fm) for s in SEGMENTS) == 1, (r, fm)
    assert len(SEGMENTS) == 11
    assert segment_of(1, 5, 5) == WIN_BACK == "cant_lose_them"
    assert segment_of(5, 1, 2) == "potential_loyalists"  # FM rounds half up: (1 + 2) / 2 -> 2
    assert segment_of(2, 1, 1) == "hibernating"


def test_segment_counts_list_every_segment_in_order(make_lake: Lake) -> None:
    table = rfm(make_lake([order("a", T0, 4.0), order("b", T0 + DAY, 6.0)]), RfmOptions(as_of_ms=T0 + DAY))
    counts = segment_counts(table)
    assert counts.column("segment").to_pylist() == [s.name for s in SEGMENTS]
    assert sum(counts.column("customers").to_pylist()) == 2
    by_name = {row["segment"]: row for row in counts.to_pylist()}
    assert by_name["lost"]["customers"] == 1 and by_name["lost"]["revenue"] == 4.0
    assert by_name["lost"]["share"] == 0.5 and by_name["cant_lose_them"]["fm"] == "5"


def test_identify_events_set_the_traits_and_fire_the_win_back(make_lake: Lake) -> None:
    record = identify_event("p1", WIN_BACK, 155, T0, run="r1")
    encoded = default_registry().encoder("event")(record)  # a valid record of the contract
    assert default_registry().decoder("event")(encoded)["oneid"] == "p1"
    rules = load_rules_file(DEFAULT_RULES_PATH, strict=True)
    engine = Engine(rules, T0)
    state = ProfileState("p1")
    consent = event_record("identify", T0 - 1, oneid="p1", traits={"marketing_consent": True})
    engine.on_event(state, 0, 0, consent)
    engine.on_event(state, 0, 1, record)
    engine.finish_profile(state)
    assert state.trait("rfm_segment") == WIN_BACK and state.trait("rfm_score") == 155
    fired = [t for t in engine.pending if t["rule"] == "rfm_win_back"]
    assert len(fired) == 1 and json.loads(fired[0]["values"]) == {"rfm_score": 155}
    other = identify_event("p1", "champions", 555, T0 + 1, run="r2")
    assert other["message_id"] != record["message_id"]
    engine.on_event(state, 0, 2, other)
    assert [t["rule"] for t in engine.pending].count("rfm_win_back") == 1


def test_only_changes_are_sent_and_the_lake_remembers_what_was(make_lake: Lake) -> None:
    sent_before = [identify_event("anon", "lost", 111, T0, run="old"),
                   identify_event("b", "champions", 555, T0, run="old"),
                   identify_event("b", "loyal", 455, T0 - 1, run="older")]
    orders = [order("user", T0, 5.0), order("b", T0 + DAY, 9.0), order("c", T0 + DAY, 9.0)]
    con = make_lake([*orders, *sent_before], merges=[("user", "anon", T0 + 1)])
    sent = last_sent(con)
    assert sent == {"user": ("lost", 111), "b": ("champions", 555)}  # the newest, under the survivor
    table = rfm(con, RfmOptions(as_of_ms=T0 + 2 * DAY))
    now = {row["oneid"]: (row["segment"], row["rfm_score"]) for row in table.to_pylist()}
    # user: oldest, one order, least revenue: 1 1 1 as before; b and c tie: R 2, F 1, M 2
    assert now == {"user": ("lost", 111), "b": ("hibernating", 212), "c": ("hibernating", 212)}
    changed = changes(table, sent)
    assert [r["oneid"] for r in changed] == ["b", "c"]
    batches: list[list[tuple[bytes, bytes]]] = []
    count = publish(changed, now_ms=T0, run="r", encode=default_registry().encoder("event"),
                    send=batches.append, batch=1)
    assert count == len(changed) == len(batches)
    decode = default_registry().decoder("event")
    for (key, value), row in zip((b[0] for b in batches), changed, strict=True):
        event = decode(value)
        assert key == row["oneid"].encode() == event["oneid"].encode() and event["source"] == SOURCE
        assert json.loads(event["traits"]) == {"rfm_segment": row["segment"], "rfm_score": row["rfm_score"]}
