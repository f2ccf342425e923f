"""Backfill seeds, per profile, the buckets of the events its offset guards say it applied, against
a plain-Python count over a small hand-built lake (the store is a fake: the Lua is the integration
test's)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analytics.history.backfill import backfill_aggregate
from connectors.lake.query import connect
from profiles import aggregates as agg
from profiles import layout
from profiles.rules import load_rules
from schemas.testing import T0
from tests.unit.analytics.lakes import merge, page, track, write_lake

H, D = 3_600_000, 86_400_000
RULES = load_rules("""
version: 1
options: {allowed_lateness: 1h}
aggregates:
  views_7d: {on: page, op: count, window: 7d}
  spent_30d: {on: "track:Order Completed", op: sum, value: event.properties.amount, window: 30d}
  last_sku: {on: "track:Order Completed", op: last, value: event.properties.sku}
""", strict=True)
LAST_SEEN = T0 + 40 * D + 10 * H


class Store:
    """Guards as the profile store reads them; seeds recorded, ``changed`` once for ``e``."""

    def __init__(self, guards: dict[str, tuple[dict[str, int], int | None] | None]) -> None:
        self.table = guards
        self.payloads: list[dict[str, Any]] = []
        self.raced = False

    def guards(self, oneids: Sequence[str]) -> list[tuple[dict[str, int], int | None] | None]:
        return [self.table.get(o) for o in oneids]

    def seed(self, payloads: Sequence[dict[str, Any]]) -> list[str]:
        out = []
        for p in payloads:
            if p["id"] == "e" and not self.raced:  # the stream moved the profile meanwhile
                self.raced = True
                out.append("changed")
            else:
                self.payloads.append(p)
                out.append("seeded")
        return out


def lake(tmp_path: Path) -> tuple[list[dict[str, Any]], list[tuple[int, int]]]:
    events = [page("a", "/x", T0 + 30 * D),  # older than the stream keeps after its last event
              *[page("a", "/x", T0 + 40 * D + h * H) for h in range(3)],
              page("a", "/x", T0 + 40 * D - 3 * H),  # late: skipped as the stream skips it
              *[page("a", "/x", T0 + 40 * D + h * H) for h in range(3, 6)],  # after the guard
              page("b", "/y", T0 + 40 * D + H // 2),  # b was merged into a
              track("a", "Order Completed", T0 + 40 * D + 5 * H, properties={"amount": 5, "sku": "s"}),
              page("c", "/x", T0 + 40 * D), page("d", "/x", T0 + 40 * D), page("e", "/x", T0 + 40 * D)]
    return events, write_lake(tmp_path, events, [merge("a", "b", T0)])


def test_buckets_of_the_applied_events_only(tmp_path: Path) -> None:
    events, where = lake(tmp_path)
    (pa_, guard), (pb, b_offset), (pe, e_offset) = where[3], where[8], where[12]
    a_guards = {f"{pa_}": guard, f"{pa_}:a": guard - 2, f"{pb}:b": b_offset}  # the highest counts
    store = Store({
        "a": (a_guards, LAST_SEEN),
        "c": None,  # erased
        "d": ({f"{where[11][0]}": 10**9}, LAST_SEEN),  # applied more than the lake holds
        "e": ({f"{pe}": e_offset}, None),
    })
    report = backfill_aggregate(connect(tmp_path), RULES, "views_7d", store)

    sid = RULES.aggregates["views_7d"].sid
    keep = agg.keep_from(LAST_SEEN, H, 7 * D, H)
    assert keep is not None
    applied = [e["timestamp"] for e, (p, o) in zip(events, where, strict=True)
               if e["type"] == "page" and (e["oneid"], p) in (("a", pa_), ("b", pb))
               and o <= {pa_: guard, pb: b_offset}[p] and e["timestamp"] != T0 + 40 * D - 3 * H]
    expected = Counter(ts // H for ts in applied if ts // H >= keep)
    assert len(applied) == 5 and len(expected) == 3  # the guard, lateness and pruning each leave out some
    seeded = {p["id"]: p for p in store.payloads}
    prefix = f"{layout.BUCKET}{sid}:"
    assert seeded["a"] == {"id": "a", "prefix": prefix,
                           "guards": {f"{layout.OFFSET}{g}": o for g, o in a_guards.items()},
                           "set": {f"{prefix}{i}": str(n) for i, n in expected.items()}}
    assert seeded["e"]["set"] == {f"{prefix}{(T0 + 40 * D) // H}": "1"}  # without a last seen: every bucket
    assert report.profiles == 4 and dict(report.outcomes) == {"seeded": 2, "missing": 1, "behind": 1}
    assert not report.complete


def test_sums_and_last_values_are_stored_as_the_stream_stores_them(tmp_path: Path) -> None:
    _, where = lake(tmp_path)
    p, offset = where[9]
    at = T0 + 40 * D + 5 * H
    for name, stored in (("spent_30d", {f"{at // D}": "5"}), ("last_sku", {"0": agg.stamped(at, '"s"')})):
        store = Store({"a": ({f"{p}": offset}, LAST_SEEN)})
        report = backfill_aggregate(connect(tmp_path), RULES, name, store)
        prefix = f"{layout.BUCKET}{RULES.aggregates[name].sid}:"
        assert [s["set"] for s in store.payloads] == [{f"{prefix}{k}": v for k, v in stored.items()}]
        assert dict(report.outcomes) == {"seeded": 1}
