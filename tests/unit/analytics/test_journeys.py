"""The journeys every model reads: one order, visits collapsed, one shape however the lake is."""

from __future__ import annotations

from typing import Any

from analytics.attribution.journeys import build_journeys
from analytics.channels import load_channel_rules
from analytics.touches import Conversion
from schemas.testing import T0, event_record
from tests.unit.analytics.conftest import Lake

SITE = "https://shop.example.cn"


def visit(oneid: str, at: int, source: str, message_id: str, medium: str = "cpc") -> dict[str, Any]:
    return event_record("page", at, oneid=oneid, source=source, message_id=message_id,
                        properties={"url": f"{SITE}/?utm_medium={medium}"})


def order(oneid: str, at: int, source: str, message_id: str) -> dict[str, Any]:
    return event_record("track", at, oneid=oneid, source=source, message_id=message_id,
                        event="Order Completed")


def test_events_are_in_journey_order(make_lake: Lake) -> None:
    # by person, then time, touches before an order of the same moment, then source and messageId
    con = make_lake([
        order("b", T0, "a", "b-order"), visit("b", T0, "b", "b-2", "email"),
        visit("b", T0, "a", "b-1", "social"), visit("a", T0 + 5, "x", "a-late", "email"),
        order("a", T0, "a", "a-order"), visit("a", T0, "z", "a-first"),
    ])
    found = build_journeys(con, Conversion(), load_channel_rules())
    ids = found.source.table.column("message_id").take(found.rows).to_pylist()
    by_person = {tuple(ids[i] for i in range(len(ids)) if found.person[i] == p) for p in set(found.person)}
    assert by_person == {("a-first", "a-order", "a-late"), ("b-1", "b-2", "b-order")}
    assert list(found.person) == sorted(found.person)  # each person's events together
    assert found.is_conv.tolist().count(True) == 2


def test_an_empty_lake_has_empty_journeys(make_lake: Lake) -> None:
    found = build_journeys(make_lake([]), Conversion(), load_channel_rules())
    assert len(found.ts) == len(found.person) == found.source.table.num_rows == 0
