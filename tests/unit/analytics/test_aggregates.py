"""Each aggregate op from history against a plain-Python count over small hand-built lakes."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from analytics.history.state import History
from connectors.lake.query import connect
from profiles.rules import load_rules
from schemas.testing import T0, event_record
from tests.unit.analytics.lakes import merge, page, track, write_lake

H, D = 3_600_000, 86_400_000
RULES = load_rules("""
version: 1
options: {allowed_lateness: 1h}
aggregates:
  views_7d: {on: page, op: count, window: 7d}
  views_ever: {on: page, op: count}
  spent_30d: {on: "track:Order Completed", op: sum, value: event.properties.amount, window: 30d}
  least_30d: {on: "track:Order Completed", op: min, value: event.properties.amount, window: 30d}
  most: {on: "track:Order Completed", op: max, value: event.properties.amount}
  first_sku: {on: "track:Order Completed", op: first, value: event.properties.sku}
  last_sku: {on: "track:Order Completed", op: last, value: event.properties.sku}
  paths_30d: {on: page, op: unique, value: event.path, window: 30d}
""", strict=True)


def history(tmp_path: Path, events: list[dict[str, Any]], merges: Sequence[dict[str, Any]] = (),
            as_of: int = T0 + 40 * D) -> dict[str, dict[str, Any]]:
    write_lake(tmp_path, events, merges)
    history = History(connect(tmp_path), RULES)
    return {oneid: {**history.defaults, **p.aggregates} for oneid, p in history.profiles(as_of).items()}


def in_window(ts: int, as_of: int, window: int, bucket: int) -> bool:
    """Plain bucket arithmetic: the ceil(window/bucket) buckets ending with as_of's."""
    last = as_of // bucket
    first = last - math.ceil(window / bucket) + 1
    return first <= ts // bucket <= last


def test_counts_follow_the_buckets_of_the_window(tmp_path: Path) -> None:
    as_of = T0 + 40 * D + 5 * H
    times = [T0 + d * D + h * H for d in (0, 30, 32, 33, 34, 39, 40, 41) for h in (0, 7, 23)]
    found = history(tmp_path, [page("a", "/x", t) for t in times], as_of=as_of)["a"]
    assert found["views_7d"] == sum(in_window(t, as_of, 7 * D, H) for t in times)
    assert found["views_ever"] == len(times)  # a lifetime count holds later events too
    assert 0 < found["views_7d"] < len(times)


def test_sum_min_max_take_only_amounts(tmp_path: Path) -> None:
    amounts: list[Any] = [10, 2.5, -3, "7", None, True, 1e16, [1], 40]
    events = [track("a", "Order Completed", T0 + 35 * D + i * H, properties={"amount": v})
              for i, v in enumerate(amounts)]
    events.append(track("a", "Order Completed", T0 + 35 * D, properties={}))  # no amount: skipped
    found = history(tmp_path, events)["a"]
    usable = [v for v in amounts if type(v) in (int, float) and abs(v) <= 1e15]
    assert found["spent_30d"] == pytest.approx(sum(usable))
    assert (found["least_30d"], found["most"]) == (min(usable), max(usable))


def test_first_and_last_by_event_time_then_offset(tmp_path: Path) -> None:
    events = [track("a", "Order Completed", T0 + 5 * D, properties={"sku": "late-arrival-earliest"}),
              track("a", "Order Completed", T0 + 6 * D, properties={"sku": "tie-1"}),
              track("a", "Order Completed", T0 + 6 * D, properties={"sku": "tie-2"}),
              track("a", "Order Completed", T0 + 4 * D - 1, properties={"sku": None})]  # null: skipped
    events.insert(0, track("a", "Order Completed", T0 + 5 * D + 1, properties={"sku": "first-sent"}))
    found = history(tmp_path, events)["a"]
    assert found["first_sku"] == "late-arrival-earliest"
    assert found["last_sku"] == "tie-2"  # the later offset at the same millisecond


def test_unique_uses_the_streams_64_bit_map(tmp_path: Path) -> None:
    paths = [f"/p{i}" for i in range(40)] + ["/p1", "/p2"]
    found = history(tmp_path, [page("a", p, T0 + 39 * D + i) for i, p in enumerate(paths)])["a"]
    bitmap = 0
    for p in set(paths):
        bitmap |= 1 << (zlib.crc32(p.encode()) % 64)
    zeros = 64 - bin(bitmap).count("1")
    assert found["paths_30d"] == round(-64 * math.log(zeros / 64))


def test_late_events_are_skipped_as_the_engine_skips_them(tmp_path: Path) -> None:
    events = [page("a", "/x", T0 + 40 * D), page("a", "/x", T0 + 40 * D - H),  # exactly the lateness: kept
              page("a", "/x", T0 + 40 * D - H - 1),  # older by more: skipped
              page("b", "/x", T0 + 40 * D - 2 * H)]  # another person's first event: kept
    found = history(tmp_path, events, as_of=T0 + 41 * D)
    assert (found["a"]["views_ever"], found["b"]["views_ever"]) == (2, 1)


def test_a_clock_ahead_is_filed_under_receipt_plus_skew(tmp_path: Path) -> None:
    received = T0 + 40 * D
    ahead = event_record("page", received + 30 * D, oneid="a", received_at=received,
                         properties={"path": "/x"})
    found = history(tmp_path, [ahead], as_of=received + 10 * 60_000)["a"]
    assert found["views_7d"] == 1  # filed at received + 5 min, so inside this window


def test_duplicates_count_once_and_merged_people_count_together(tmp_path: Path) -> None:
    first = page("b", "/x", T0 + 39 * D, message_id="same")
    again = dict(first)  # the same messageId from the same source, put on the topic twice
    events = [page("a", "/x", T0 + 39 * D), first, again, page("c", "/x", T0 + 39 * D),
              event_record("page", T0 + 39 * D, oneid=None, properties={"path": "/x"})]  # never resolved
    found = history(tmp_path, events, [merge("a", "b", T0), merge("b", "c", T0)])
    assert set(found) == {"a"}
    assert found["a"]["views_ever"] == 3
