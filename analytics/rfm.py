"""RFM: recency, frequency and monetary quintile scores per person from the lake's orders, and
the named segment each person's scores fall in.

Orders are the conversion events (``Conversion``: default ``Order Completed``, revenue from
``revenue`` else ``total``) of people with a OneID, counted under the survivor of every merge,
up to ``as_of``. Per person: R from the latest order's time (recent is high), F the number of
orders, M their revenue.

**Scores** (1..5, set-based, ties share a score): with n people and ``rank`` the 1-based rank
of a person's value among all (ties take the lowest), ``score = 1 + floor(5 * (rank - 1) / n)``.
Each score holds a fifth of the people when values are distinct; people with equal values
always share a score (a grid of "one order" customers all score F=1, as they should).

**Segments** from R and FM = round((F + M) / 2) (halves up), every cell named exactly once:

=====================  =======  ========  =============================================
segment                R        FM        who
=====================  =======  ========  =============================================
champions              5        4-5       bought lately, often, much
loyal                  3-4      4-5       buy often and much, not the very latest
potential_loyalists    4-5      2-3       recent, middling frequency and spend
new                    5        1         just bought, little so far
promising              4        1         recent, little so far
need_attention         3        3         average on every count
about_to_sleep         3        1-2       fading, never much
at_risk                1-2      3-4       bought well, long ago
cant_lose_them         1-2      5         the best customers, gone quiet: win them back
hibernating            2        1-2       little, long ago
lost                   1        1-2       least recent, least value
=====================  =======  ========  =============================================

``rfm_score`` is the three digits R, F, M as a number (545), so rules can compare it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from analytics.touches import LINKS, Conversion, build_links
from profiles.durations import DAY_MS


@dataclass(frozen=True)
class Segment:
    """A named block of the grid: R in ``r``, FM in ``fm`` (inclusive ranges)."""

    name: str
    r: tuple[int, int]
    fm: tuple[int, int]

    def holds(self, r: int, fm: int) -> bool:
        return self.r[0] <= r <= self.r[1] and self.fm[0] <= fm <= self.fm[1]


SEGMENTS: tuple[Segment, ...] = (
    Segment("champions", (5, 5), (4, 5)),
    Segment("loyal", (3, 4), (4, 5)),
    Segment("potential_loyalists", (4, 5), (2, 3)),
    Segment("new", (5, 5), (1, 1)),
    Segment("promising", (4, 4), (1, 1)),
    Segment("need_attention", (3, 3), (3, 3)),
    Segment("about_to_sleep", (3, 3), (1, 2)),
    Segment("at_risk", (1, 2), (3, 4)),
    Segment("cant_lose_them", (1, 2), (5, 5)),
    Segment("hibernating", (2, 2), (1, 2)),
    Segment("lost", (1, 1), (1, 2)),
)
WIN_BACK = "cant_lose_them"


def segment_of(r: int, f: int, m: int) -> str:
    """The segment of one person's scores."""
    fm = (f + m + 1) // 2
    return next(s.name for s in SEGMENTS if s.holds(r, fm))


def _segment_sql(r: str, fm: str) -> str:
    whens = " ".join(f"WHEN {r} BETWEEN {s.r[0]} AND {s.r[1]} AND {fm} BETWEEN {s.fm[0]} AND {s.fm[1]} "
                     f"THEN '{s.name}'" for s in SEGMENTS)
    return f"CASE {whens} END"


@dataclass(frozen=True)
class RfmOptions:
    """``as_of_ms``: orders after it are ignored and recency is counted to it (default: now)."""

    conversion: Conversion = field(default_factory=Conversion)
    as_of_ms: int | None = None

    def as_of(self) -> int:
        return self.as_of_ms if self.as_of_ms is not None else int(time.time() * 1000)


RFM_SCHEMA = pa.schema([
    ("oneid", pa.string()), ("last_order_ms", pa.int64()), ("recency_days", pa.float64()),
    ("frequency", pa.int64()), ("monetary", pa.float64()), ("r", pa.int64()), ("f", pa.int64()),
    ("m", pa.int64()), ("rfm_score", pa.int64()), ("segment", pa.string()),
])


def rfm(con: duckdb.DuckDBPyConnection, options: RfmOptions | None = None) -> pa.Table:
    """One row per person with an order: :data:`RFM_SCHEMA`, ordered by OneID (orders from the
    ``events`` view: each once, unmerges applied)."""
    options = options or RfmOptions()
    conversion = options.conversion
    as_of = int(options.as_of())
    build_links(con)
    score = "CAST(1 + (5 * ({rank} - 1)) // n AS BIGINT)"
    return con.sql(f"""
        WITH orders AS (
            SELECT coalesce(l.survivor, e.oneid) AS person, e.timestamp AS ts,
                   json_extract_string(e.properties, {conversion.revenue_paths()}) AS r
            FROM events e LEFT JOIN {LINKS} l ON l.oneid = e.oneid
            WHERE e.type = 'track' AND e.event = $conversion AND e.oneid IS NOT NULL
              AND e.timestamp <= {as_of}
        ), people AS (
            SELECT person, max(ts) AS last_ts, count(*) AS frequency,
                   sum({conversion.revenue_sql('r')}) AS monetary
            FROM orders GROUP BY person
        ), ranked AS (
            SELECT *, count(*) OVER () AS n, rank() OVER (ORDER BY last_ts) AS r_rank,
                   rank() OVER (ORDER BY frequency) AS f_rank, rank() OVER (ORDER BY monetary) AS m_rank
            FROM people
        ), scored AS (
            SELECT person, last_ts, frequency, monetary, {score.format(rank='r_rank')} AS r,
                   {score.format(rank='f_rank')} AS f, {score.format(rank='m_rank')} AS m
            FROM ranked
        )
        SELECT person AS oneid, last_ts AS last_order_ms,
               ({as_of} - last_ts) / {float(DAY_MS)!r} AS recency_days,
               frequency, monetary, r, f, m, r * 100 + f * 10 + m AS rfm_score,
               {_segment_sql('r', '(f + m + 1) // 2')} AS segment
        FROM scored ORDER BY oneid
    """, params={"conversion": conversion.event}).to_arrow_table().cast(RFM_SCHEMA)  # noqa: S608 - own names, numbers


def segment_counts(table: pa.Table) -> pa.Table:
    """segment, R and FM ranges, customers, share of customers, revenue: every segment of the
    grid in its documented order, empty ones included (a chart's axis should not move)."""
    people: dict[str, int] = {}
    revenue: dict[str, float] = {}
    for segment, monetary in zip(table.column("segment").to_pylist(), table.column("monetary").to_pylist(),
                                 strict=True):
        people[segment] = people.get(segment, 0) + 1
        revenue[segment] = revenue.get(segment, 0.0) + monetary
    total = table.num_rows
    return pa.table({
        "segment": [s.name for s in SEGMENTS],
        "r": [f"{s.r[0]}-{s.r[1]}" if s.r[0] != s.r[1] else str(s.r[0]) for s in SEGMENTS],
        "fm": [f"{s.fm[0]}-{s.fm[1]}" if s.fm[0] != s.fm[1] else str(s.fm[0]) for s in SEGMENTS],
        "customers": pa.array([people.get(s.name, 0) for s in SEGMENTS], pa.int64()),
        "share": pa.array([people.get(s.name, 0) / total if total else 0.0 for s in SEGMENTS], pa.float64()),
        "revenue": pa.array([revenue.get(s.name, 0.0) for s in SEGMENTS], pa.float64()),
    })
