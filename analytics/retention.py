"""Retention: weekly cohorts by first activity, and who came back on or after each week.

A person (a survivor: merges followed) belongs to the cohort of the UTC week (Monday to Sunday)
of their first activity; activity is an event of ``activity_types`` (the profile rules'
interaction types by default: track, page, screen; an identify is not a visit). They count as
*returned on or after week N* when they were active at least ``N`` weeks (``7N`` days) after
their own first activity: "unbounded" retention, so the share never grows with ``N``.

A cell is only shown once every member of its cohort could have reached it (the cohort's week
ended ``N`` weeks before ``as_of``, by default the lake's last activity); later cells are
``None``, never a misleading zero.

A first and a last time are all it needs, and a copy of an event changes neither, so it reads
every record (``events_raw``) without deduplicating: one aggregation per OneID, then per person.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import duckdb
import pyarrow as pa

from analytics.exceptions import AnalyticsError
from analytics.people import event_source, with_person
from profiles.durations import DAY_MS, WEEK_MS

ACTIVITY_TYPES = ("track", "page", "screen")
DEFAULT_WEEKS = 8
MAX_WEEKS = 104
_MONDAY_SHIFT_MS = 3 * DAY_MS  # 1970-01-01 was a Thursday


@dataclass(frozen=True)
class Cohort:
    start: date  # the Monday of the cohort's week
    people: int
    returned: tuple[int | None, ...]  # week 0..N: people active on or after that week; None: not yet known

    def shares(self) -> list[float | None]:
        return [None if r is None else r / self.people for r in self.returned]


@dataclass(frozen=True)
class RetentionResult:
    weeks: int
    as_of_ms: int | None  # None: the lake has no activity
    cohorts: tuple[Cohort, ...]  # oldest first

    def table(self) -> pa.Table:
        """One row per cohort and week (long form, for csv and json)."""
        rows = [{"cohort": c.start.isoformat(), "week": n, "people": c.people, "returned": r,
                 "share": None if r is None else round(r / c.people, 4)}
                for c in self.cohorts for n, r in enumerate(c.returned)]
        schema = pa.schema([("cohort", pa.string()), ("week", pa.int64()), ("people", pa.int64()),
                            ("returned", pa.int64()), ("share", pa.float64())])
        return pa.Table.from_pylist(rows, schema=schema)

    def grid(self) -> pa.Table:
        """One row per cohort, a column of shares per week (for reading in a terminal)."""
        rows = []
        for c in self.cohorts:
            row: dict[str, Any] = {"cohort": c.start.isoformat(), "people": c.people}
            for n, share in enumerate(c.shares()):
                row[f"week_{n}"] = "" if share is None else f"{share:.1%}"
            rows.append(row)
        return pa.Table.from_pylist(rows)


def retention(con: duckdb.DuckDBPyConnection, *, weeks: int = DEFAULT_WEEKS,
              activity_types: Sequence[str] = ACTIVITY_TYPES, as_of_ms: int | None = None) -> RetentionResult:
    """Weekly cohorts with the people who returned on or after each of weeks ``0..weeks``."""
    if not 1 <= weeks <= MAX_WEEKS:
        raise AnalyticsError(f"weeks: 1 to {MAX_WEEKS}, not {weeks}")
    if not activity_types:
        raise AnalyticsError("activity_types: at least one event type")
    returned = ", ".join(f"count(*) FILTER (WHERE last - first >= {n * WEEK_MS})"
                         for n in range(1, weeks + 1))
    # the week arithmetic is ms on integers (floor modulo), so no session time zone is involved
    try:
        events = event_source(con)
    except duckdb.Error as exc:
        raise AnalyticsError(f"retention query failed: {exc}") from None
    sql = f"""
        WITH per_oneid AS (
            SELECT oneid, min(timestamp) AS first, max(timestamp) AS last FROM {events}
            WHERE oneid IS NOT NULL AND list_contains($types, type::VARCHAR) GROUP BY oneid),
        act AS (SELECT person, min(first) AS first, max(last) AS last
                FROM {with_person("per_oneid")} GROUP BY 1)
        SELECT first - ((first + {_MONDAY_SHIFT_MS}) % {WEEK_MS} + {WEEK_MS}) % {WEEK_MS} AS cohort,
               count(*), {returned}, max(max(last)) OVER ()
        FROM act GROUP BY 1 ORDER BY 1"""  # noqa: S608 (numbers only; the types are a parameter)
    try:
        rows = con.execute(sql, {"types": list(activity_types)}).fetchall()
    except duckdb.Error as exc:
        raise AnalyticsError(f"retention query failed: {exc}") from None
    if as_of_ms is None:
        as_of_ms = int(rows[0][-1]) if rows else None
    cohorts = []
    for row in rows:
        start, people, counts = int(row[0]), int(row[1]), row[2:-1]
        cells: list[int | None] = [people]
        for n, count in enumerate(counts, start=1):
            complete = as_of_ms is not None and start + WEEK_MS + n * WEEK_MS <= as_of_ms
            cells.append(int(count) if complete else None)
        cohorts.append(Cohort(datetime.fromtimestamp(start / 1000, UTC).date(), people, tuple(cells)))
    return RetentionResult(weeks, as_of_ms, tuple(cohorts))
