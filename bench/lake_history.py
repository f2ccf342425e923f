"""The lake's questions over a big history: a synthetic lake of N events, each question timed.

The lake is generated straight into Parquet, vectorised (NumPy and Arrow, no record in Python), in
the sink's exact layout and schema (``<lake>/events/event_date=.../<topic>+<p>+<first>+<last>.parquet``,
``connectors.lake.rows.arrow_schema``), so every view and question reads it as a real one:

* N / 10 people (a few come back often, most rarely: a squared uniform draw), 90 days, 6
  partitions, offsets increasing per partition; pages (home, pricing, features, docs, product)
  and tracks (Product Viewed / Added, Checkout Started, Order Completed with revenue and an
  order id, Coupon Applied, Demo Requested), identifies with an email trait;
* 40% of people logged in (a ``user_id`` identifier beside the ``anonymous_id``); UTM campaign
  context (source, medium, name) on 30% of events;
* 5% of people merged: their events before their merge day carry a OneID of their own that a
  ``merges`` row folds into the person's (history follows it through the ``identities`` view).

A built lake is kept under ``.local/bench-lake-<N>-v<VERSION>`` (bump ``VERSION`` when the
generator changes) and reused. Each question is one :class:`Timed` entry in ``TIMED``: a new
analytics question is timed by adding its entry (one that also reads or writes Redis: a
:class:`TimedLive` entry in ``TIMED_LIVE``). Sizes: ``BENCH_LAKE_SIZES`` (``make bench``:
1,000,000; add 10,000,000 explicitly, its first build takes minutes).

Measured on the 2-core machine shared with other test runs (seconds; scan = the baseline):

=========== ===== ==== =========== ========== ====== ==== ===========
events      build scan events view identities verify RFM  attribution
=========== ===== ==== =========== ========== ====== ==== ===========
1,000,000   20.7  0.94 9.0         2.4        6.6    1.4  1.1
10,000,000  170.6 1.82 138.9       36.5       30.8   6.0  9.1
=========== ===== ==== =========== ========== ====== ==== ===========

(attribution: all six models, median of 3 runs alternating with the code before its speed-up,
the scan baseline at 0.24 s and 0.73 s in the same runs: 1.1 s wall and 1.7 s CPU instead of
1.7 and 2.9 at 1M, 9.1 s wall and 11.7 s CPU instead of 14.0 and 23.4 at 10M; 5.5 s wall when
both cores are free. verify: its history side, every person, alternating with the code before
its speed-up in the same runs (load ~2.5): 6.5-6.7 s instead of 10.0-10.2 at 1M, 30.8-32.8 s
instead of 63.1-89.7 at 10M (49 CPU-s instead of 93: events table 11.2 s, of which the late
events' window 2.5; aggregates, behaviour score and last interaction in one pass plus the unique
counts 9.0; score and tier 1.8; tags 8.1; the comparison 2.1), 56-68 s instead of 111-131 when
other jobs took most of both cores. Counting the events view alone, which keeps each
event once per source and messageId, takes 10-75x the scan; RFM, which dedups only its orders,
is the fastest question.)

Backfill and segments, same machine, after the events view's speed-up (seconds; answers in
brackets: profiles seeded, members):

=========== ===================== ======================= ============= ============== =========
events      backfill revenue_365d backfill page_views_30d SQL segment   segment refresh segment
                                                          (lake side)   (SQL, from 0)   count
=========== ===================== ======================= ============= ============== =========
1,000,000   3.3 (27,317)          4.2 (98,271)            6.8 (178)     5.8 (178)      0.06
10,000,000  9.3 (272,502)         19.7 (982,271)          15.8 (1,740)  13.1 (1,740)   0.21
=========== ===================== ======================= ============= ============== =========

(backfill: every person caught up, history up to their offset guards and the seed payloads; the
Lua ``seed`` writes are not timed. Alternating with the code before its speed-up in the same
runs: revenue_365d 3.2-3.4 s instead of 3.9-4.2 at 1M, 9.3 instead of 19.9 at 10M; page_views_30d
4.0-4.4 instead of 4.6-4.9, 19.7 instead of 31.6, of which a million payloads' Python ~8 s. The
refresh and the count run only with a Redis (``TIMED_LIVE``, ``make bench``): the refresh enters
every member in chunks of 1,000; a count is one ZCARD, the figure is mostly the client's first
round trip.)
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analytics.segments import count_members
from apps import factory
from connectors.lake import layout
from connectors.lake.query import connect
from connectors.lake.rows import TABLES, arrow_schema
from profiles.rules.model import SegmentRule
from profiles.store import ProfileStore
from schemas.codec import default_registry
from streams.outbox import SegmentOutbox
from touchstream.settings import Settings

log = logging.getLogger(__name__)

VERSION = 1
SIZES = (1_000_000,)
DAYS = 90
PARTITIONS = 6
DAY_MS = 86_400_000
START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
TOPIC = "bench.events.resolved"
MERGES_TOPIC = "bench.identity.merges"

_PAGES = [("Home", "/"), ("Pricing", "/pricing"), ("Features", "/features/"), ("Docs", "/docs/start"),
          ("Product", "/p/")]
_TRACKS = ["Product Viewed", "Product Added", "Checkout Started", "Order Completed", "Coupon Applied",
           "Demo Requested"]
_TRACK_P = [0.45, 0.2, 0.12, 0.1, 0.05, 0.08]
_CAMPAIGNS = ['"campaign":{"source":"wechat","medium":"social","name":"spring_sale"},',
              '"campaign":{"source":"baidu","medium":"cpc","name":"brand"},',
              '"campaign":{"source":"newsletter","medium":"email","name":"weekly"},']
_FEATURES = ["segments", "journeys", "identity", "lake", "webhooks"]


# -- the lake ------------------------------------------------------------------------------------


def lake_path(events: int, root: Path = Path(".local")) -> Path:
    return root / f"bench-lake-{events}-v{VERSION}"


def build(events: int, root: Path = Path(".local"), seed: int = 13) -> tuple[Path, float]:
    """The lake of ``events`` events (built, or the cached one) and the seconds building took."""
    path = lake_path(events, root)
    done = path / ".complete"
    if done.exists():
        return path, 0.0
    started = time.perf_counter()
    shutil.rmtree(path, ignore_errors=True)
    rng = np.random.default_rng(seed)
    people = max(10, events // 10)
    registry = default_registry()
    schemas = {spec.name: arrow_schema(registry, spec.schema) for spec in TABLES}
    next_offset = np.zeros(PARTITIONS, dtype=np.int64)
    merge_offset = np.zeros(PARTITIONS, dtype=np.int64)
    per_day = np.full(DAYS, events // DAYS)
    per_day[: events - int(per_day.sum())] += 1
    first_id = 0
    for day in range(DAYS):
        table = _day_of_events(rng, day, int(per_day[day]), people, first_id, schemas["events"])
        first_id += table.num_rows
        _write_by_partition(path, "events", TOPIC, day, table, next_offset)
        merges = _day_of_merges(day, people, schemas["merges"])
        if merges.num_rows:
            _write_by_partition(path, "merges", MERGES_TOPIC, day, merges, merge_offset)
    done.write_text(f"{events} events, {people} people, version {VERSION}\n")
    return path, time.perf_counter() - started


def _text(*parts: pa.Array | str) -> pa.Array:
    """Element-wise concatenation of string arrays and literals."""
    return pc.binary_join_element_wise(*parts, "")


def _numbers(values: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(values), pa.string())


def _merge_day(person: np.ndarray) -> np.ndarray:
    """The day a merged person (every 20th) logs in and their anonymous OneID is folded."""
    return (person // 20) % (DAYS - 1) + 1


def _day_of_events(rng: np.random.Generator, day: int, count: int, people: int, first_id: int,
                   schema: pa.Schema) -> pa.Table:
    person = np.minimum((rng.random(count) ** 2 * people).astype(np.int64), people - 1)
    stamps = np.sort(rng.integers(0, DAY_MS, count)) + START_MS + day * DAY_MS
    kind = rng.choice(3, count, p=[0.6, 0.36, 0.04])  # page, track, identify
    track = rng.choice(len(_TRACKS), count, p=_TRACK_P)
    page = rng.integers(0, len(_PAGES), count)
    who = _numbers(person)
    logged_in = person % 5 < 2
    merged_before = (person % 20 == 0) & (day < _merge_day(person))
    oneid = pc.if_else(pa.array(merged_before), _text("o-", who, "-anon"), _text("o-", who))
    anonymous = _text("a-", who)
    user = pc.if_else(pa.array(logged_in), _text("u-", who), pa.scalar(None, pa.string()))

    sku = _numbers(rng.integers(0, 500, count))
    feature = pa.array(_FEATURES).take(pa.array(rng.integers(0, len(_FEATURES), count)))
    path = pa.array([p for _, p in _PAGES]).take(pa.array(page))
    path = pc.if_else(pa.array(page == 2), _text(path, feature), path)
    path = pc.if_else(pa.array(page == 4), _text(path, sku), path)
    page_props = _text('{"path":"', path, '","url":"https://shop.example.cn', path, '"}')
    revenue = _numbers(np.round(rng.gamma(2.0, 160.0, count), 2))
    order_props = _text('{"revenue":', revenue, ',"currency":"CNY","order_id":"ord-',
                        _numbers(np.arange(first_id, first_id + count)), '"}')
    sku_props = _text('{"sku":"sku-', sku, '","price":', _numbers(rng.integers(9, 999, count)), "}")
    is_order = pa.array(track == _TRACKS.index("Order Completed"))
    track_props = pc.if_else(is_order, order_props, sku_props)
    properties = pc.choose(pa.array(kind, pa.int8()), page_props, track_props, pa.scalar("{}"))
    choices = [*_CAMPAIGNS, *[""] * (len(_CAMPAIGNS) * 10 // 3 - len(_CAMPAIGNS))]  # 3 in 10 carry one
    utm = pa.array(choices).take(pa.array(rng.integers(0, len(choices), count)))
    context = _text("{", utm, '"locale":"zh-CN","ip":"10.0.0.1"}')
    traits = pc.if_else(pa.array(kind == 2), _text('{"email":"p', who, '@example.cn"}'), pa.scalar("{}"))

    types = pa.array(["page", "track", "identify"]).take(pa.array(kind))
    names = pa.array([n for n, _ in _PAGES]).take(pa.array(page))
    none = pa.scalar(None, pa.string())
    columns: dict[str, Any] = {
        "message_id": _text("m-", _numbers(np.arange(first_id, first_id + count))),
        "type": types,
        "event": pc.if_else(pa.array(kind == 1), pa.array(_TRACKS).take(pa.array(track)), none),
        "name": pc.if_else(pa.array(kind == 0), names, none),
        "anonymous_id": anonymous, "user_id": user,
        "timestamp": pa.array(stamps), "original_timestamp": pa.array(stamps), "sent_at": pa.array(stamps),
        "received_at": pa.array(stamps + 40), "source": pa.array(["web"] * count),
        "identifiers": _identifiers(anonymous, user, logged_in),
        "properties": properties, "traits": traits, "context": context,
        "integrations": pa.array(["{}"] * count),
        "trusted": pa.array(np.ones(count, dtype=bool)), "oneid": oneid,
        "_partition": pa.array((person % PARTITIONS).astype(np.int32)),
    }
    return _table(schema, columns, count)


def _table(schema: pa.Schema, columns: dict[str, Any], count: int) -> pa.Table:
    """The table in the lake's schema: a column not given is empty lists (arrays) or nulls."""
    def missing(kind: pa.DataType) -> pa.Array:
        if pa.types.is_list(kind):
            return pa.ListArray.from_arrays(pa.array(np.zeros(count + 1, dtype=np.int32)),
                                            pa.array([], kind.value_type), type=kind)
        return pa.nulls(count, kind)
    arrays = [columns[f.name] if f.name in columns else missing(f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def _identifiers(anonymous: pa.Array, user: pa.Array, logged_in: np.ndarray) -> pa.Array:
    """[anonymous_id] or [anonymous_id, user_id] per event."""
    count = len(anonymous)
    sizes = 1 + logged_in.astype(np.int32)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int32)
    users = np.flatnonzero(logged_in)
    order = np.argsort(np.concatenate([np.arange(count) * 2, users * 2 + 1]), kind="stable")
    types = pa.array(["anonymous_id"] * count + ["user_id"] * len(users)).take(pa.array(order))
    values = pa.concat_arrays([anonymous, user.take(pa.array(users))]).take(pa.array(order))
    items = pa.StructArray.from_arrays([types, values], names=["type", "value"])
    return pa.ListArray.from_arrays(pa.array(offsets), items)


def _day_of_merges(day: int, people: int, schema: pa.Schema) -> pa.Table:
    merged = np.arange(0, people, 20)
    merged = merged[_merge_day(merged) == day]
    count = len(merged)
    who = _numbers(merged)
    stamps = START_MS + day * DAY_MS + (merged % DAY_MS)
    items = pa.StructArray.from_arrays([pa.array(["anonymous_id"] * count), _text("a-", who)],
                                       names=["type", "value"])
    columns: dict[str, Any] = {
        "survivor": _text("o-", who), "merged": _text("o-", who, "-anon"),
        "message_id": _text("login-", who), "timestamp": pa.array(stamps, pa.int64()),
        "identifiers": pa.ListArray.from_arrays(pa.array(np.arange(count + 1, dtype=np.int32)), items),
        "reason": pa.array(["shared user_id"] * count), "kind": pa.array(["merge"] * count),
        "_partition": pa.array((merged % PARTITIONS).astype(np.int32)),
    }
    return _table(schema, columns, count)


def _write_by_partition(root: Path, table: str, topic: str, day: int, rows: pa.Table,
                        next_offset: np.ndarray) -> None:
    """One file per partition for the day, named by its offset range as a roll names it."""
    partitions = rows.column("_partition").to_numpy()
    date = time.strftime("%Y-%m-%d", time.gmtime((START_MS + day * DAY_MS) // 1000))
    folder = layout.date_dir(root, table, date)
    folder.mkdir(parents=True, exist_ok=True)
    for partition in range(PARTITIONS):
        part = rows.filter(pa.array(partitions == partition))
        if part.num_rows == 0:
            continue
        first = int(next_offset[partition])
        offsets = pa.array(np.arange(first, first + part.num_rows, dtype=np.int64))
        part = part.set_column(part.schema.get_field_index("_offset"), "_offset", offsets)
        span = layout.Span(topic, partition, first, first + part.num_rows - 1)
        pq.write_table(part, folder / span.file_name, compression="zstd")
        next_offset[partition] += part.num_rows


# -- the questions -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    """One question timed over the lake: ``run(con, lake)`` answers it (its answer is reported
    beside its time when it is a number)."""

    name: str
    run: Callable[[duckdb.DuckDBPyConnection, Path], Any]


def _scan_count(con: duckdb.DuckDBPyConnection, _lake: Path) -> Any:
    """The baseline: DuckDB reading every event row's OneID and time (no view logic)."""
    return con.execute("SELECT count(*) FROM (SELECT oneid, max(timestamp) FROM events_raw "
                       "GROUP BY oneid)").fetchone()[0]  # type: ignore[index]


def _events_view(con: duckdb.DuckDBPyConnection, _lake: Path) -> Any:
    """Each event once, unmerges applied: the view every question reads."""
    return con.execute("SELECT count(*) FROM events").fetchone()[0]  # type: ignore[index]


def _people(con: duckdb.DuckDBPyConnection, _lake: Path) -> Any:
    """Survivors through the identities view (merge chains followed)."""
    return con.execute("SELECT count(DISTINCT survivor) FROM identities").fetchone()[0]  # type: ignore[index]


def _verify_history(con: duckdb.DuckDBPyConnection, _lake: Path) -> Any:
    """`verify`'s history side: the default rules over the lake for every person (the live side
    reads Redis in batches of 1,000 and is not timed here)."""
    from analytics.history.verify import verify
    from profiles.rules import load_rules_file
    from profiles.rules.reload import DEFAULT_RULES_PATH

    rules = load_rules_file(DEFAULT_RULES_PATH)
    as_of = START_MS + DAYS * DAY_MS
    return verify(con, rules, lambda oneids, _at: [None] * len(oneids), as_of).profiles


def _rfm(con: duckdb.DuckDBPyConnection, _lake: Path) -> Any:
    """RFM scores of every person with an order (analytics.rfm)."""
    from analytics.rfm import RfmOptions, rfm

    return rfm(con, RfmOptions(as_of_ms=START_MS + DAYS * DAY_MS)).num_rows


def _attribution(con: duckdb.DuckDBPyConnection, _lake: Path) -> Any:
    """Every attribution model side by side over the orders' journeys (analytics.attribution)."""
    from analytics.attribution import attribution

    return attribution(con).num_rows


def _funnel(steps: list[str]) -> Callable[[duckdb.DuckDBPyConnection, Path], Any]:
    def run(con: duckdb.DuckDBPyConnection, _lake: Path) -> Any:
        """A sequential funnel within 7 days (analytics.funnels): people reaching the last step."""
        from analytics.funnels import funnel

        return funnel(con, steps, window="7d").overall.steps[-1].people
    return run


def _retention(con: duckdb.DuckDBPyConnection, _lake: Path) -> Any:
    """Weekly cohorts over 12 weeks (analytics.retention): cohorts."""
    from analytics.retention import retention

    return len(retention(con, weeks=12).cohorts)


def _predictiveness(con: duckdb.DuckDBPyConnection, _lake: Path) -> Any:
    """Leads per lead-score band from the score_crossed triggers (analytics.predictiveness)."""
    from analytics.predictiveness import predictiveness

    return predictiveness(con, {"mql_reached": 60.0}).leads


class _CaughtUp:
    """A backfill target whose every person has applied every event the lake holds (offset guards at
    the lake's end of their partition, for their own OneID and the anonymous one merged into
    them): the history side at its largest. Its ``seed`` only counts: the Lua writes are Redis's
    side, timed by the pipeline bench, not here."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        from analytics.history.backfill import lake_ends

        self.ends = lake_ends(con)
        self.seeded = 0

    def guards(self, oneids: Sequence[str]) -> list[tuple[dict[str, int], int | None] | None]:
        out: list[tuple[dict[str, int], int | None] | None] = []
        for oneid in oneids:
            person = int(oneid.removeprefix("o-"))  # the generator's names: o-<person>[-anon]
            part = person % PARTITIONS
            found = {str(part): self.ends.get(part, -1)}
            if person % 20 == 0:
                found[f"{part}:{oneid}-anon"] = self.ends.get(part, -1)
            out.append((found, AS_OF_MS))
        return out

    def seed(self, payloads: Sequence[dict[str, Any]]) -> list[str]:
        self.seeded += len(payloads)
        return ["seeded"] * len(payloads)


def _backfill(con: duckdb.DuckDBPyConnection, aggregate: str) -> Any:
    """`touchstream backfill --aggregate NAME` for every person (``analytics.history.backfill``):
    history up to each profile's guards, then the payloads the seed command would write."""
    from analytics.history.backfill import backfill_aggregate
    from profiles.rules import load_rules_file
    from profiles.rules.reload import DEFAULT_RULES_PATH

    target = _CaughtUp(con)
    backfill_aggregate(con, load_rules_file(DEFAULT_RULES_PATH), aggregate, target)
    return target.seeded


#: An SQL segment as an operator writes one: people with 3+ orders in the last 30 days.
BIG_BUYERS = SegmentRule("bench_big_buyers", None, (
    "SELECT oneid FROM events WHERE event = 'Order Completed' "  # noqa: S608 (the bench's own)
    f"AND timestamp >= {START_MS + (DAYS - 30) * DAY_MS} GROUP BY oneid HAVING count(*) >= 3"))
AS_OF_MS = START_MS + DAYS * DAY_MS


def _segment_members(con: duckdb.DuckDBPyConnection, _lake: Path) -> Any:
    """An SQL segment's answer mapped to survivors: the lake side of `segment refresh`."""
    from analytics.segments import target_members

    return len(target_members(con, BIG_BUYERS))


#: Every question timed, in order. Add one entry per question (backfill, segment count, RFM,
#: attribution, funnels): a name and a function of a fresh DuckDB connection and the lake.
TIMED: list[Timed] = [
    Timed("scan_group_by_oneid", _scan_count),
    Timed("events_view_count", _events_view),
    Timed("identities_survivors", _people),
    Timed("verify_history", _verify_history),
    Timed("rfm", _rfm),
    Timed("attribution", _attribution),
    Timed("funnel_4_steps", _funnel(["Product Viewed", "Product Added", "Checkout Started",
                                     "Order Completed"])),
    Timed("funnel_4_steps_from_any_page", _funnel(["page", "Product Added", "Checkout Started",
                                                   "Order Completed"])),
    Timed("retention_12_weeks", _retention),
    Timed("lead_score_bands", _predictiveness),
    Timed("backfill_revenue_365d", lambda con, _lake: _backfill(con, "revenue_365d")),
    Timed("backfill_page_views_30d", lambda con, _lake: _backfill(con, "page_views_30d")),
    Timed("segment_sql_members", _segment_members),
]


# -- the questions that also touch live state (Redis) ---------------------------------------------


@dataclass(frozen=True)
class Live:
    """The live side: a ``ProfileStore`` and its segments outbox on the bench's own Redis prefix
    (emptied after each lake)."""

    store: ProfileStore
    outbox: SegmentOutbox


@dataclass(frozen=True)
class TimedLive:
    """A question over the lake and the live store: ``run(con, lake, live)``."""

    name: str
    run: Callable[[duckdb.DuckDBPyConnection, Path, Live], Any]


class _Acknowledged:
    """A refresh's publisher that clears the outbox as Kafka's ack would, without producing (the
    segments topic is not the lake's question; producing is the pipeline bench's)."""

    def __init__(self, outbox: SegmentOutbox) -> None:
        self.outbox = outbox

    def send(self, changes: Sequence[dict[str, Any]]) -> None:
        self.outbox.acknowledge(changes)

    def leftovers(self) -> list[dict[str, Any]]:
        return []


def _segment_refresh(con: duckdb.DuckDBPyConnection, _lake: Path, live: Live) -> Any:
    """`touchstream segment refresh` of an SQL segment from empty: the query, the survivors, the
    diff and every member entered in atomic chunks of 1,000."""
    from analytics.segments import refresh

    return refresh(live.store, con, BIG_BUYERS, _Acknowledged(live.outbox), now_ms=AS_OF_MS).entered


#: Run after TIMED when the bench has a Redis (``make bench``), in order: the count reads what the
#: refresh wrote.
TIMED_LIVE: list[TimedLive] = [
    TimedLive("segment_refresh_sql", _segment_refresh),
    TimedLive("segment_count", lambda _con, _lake, live: count_members(live.store, BIG_BUYERS.name)),
]


def run(sizes: tuple[int, ...] = SIZES, root: Path = Path(".local"),
        settings: Settings | None = None) -> dict[str, Any]:
    """Build (or reuse) each lake and time every question over it, each on a fresh connection;
    with ``settings`` (a Redis to use), the ``TIMED_LIVE`` questions too, on a prefix of their own."""
    results: dict[str, Any] = {}
    for events in sizes:
        path, built = build(events, root)
        size = sum(p.stat().st_size for p in path.rglob("*.parquet"))
        figures: dict[str, Any] = {"build_seconds": round(built, 1), "parquet_mb": round(size / 1e6)}
        for timed in TIMED:
            _time(figures, timed.name, events, path, timed.run)
        if settings is not None:
            live_settings = replace(settings, redis_prefix=f"{settings.redis_prefix}bench-lake:")
            client = factory.redis_client(live_settings)
            live = Live(factory.profile_store(live_settings, client),
                        SegmentOutbox(client, live_settings.redis_prefix))
            try:
                for item in TIMED_LIVE:
                    _time(figures, item.name, events, path, item.run, live)
            finally:
                for key in client.scan_iter(match=f"{live_settings.redis_prefix}*", count=5000):
                    client.unlink(key)
        results[f"{events:_}".replace("_", ",")] = figures
    return results


def _time(figures: dict[str, Any], name: str, events: int, lake: Path, question: Callable[..., Any],
          *extra: Any) -> None:
    """Time ``question(con, lake, *extra)`` on a fresh connection; its answer beside its time when
    a number."""
    con = connect(lake)
    started = time.perf_counter()
    try:
        answer = question(con, lake, *extra)
    except Exception as exc:  # a bench reports a failing question and goes on
        log.warning("bench: %s over %s events failed: %s", name, events, exc)
        figures[f"{name}_seconds"] = f"failed: {type(exc).__name__}"
        return
    finally:
        con.close()
    figures[f"{name}_seconds"] = round(time.perf_counter() - started, 2)
    if isinstance(answer, int | float):
        figures[f"{name}_answer"] = answer


def main(argv: list[str]) -> None:
    import json

    logging.basicConfig(level="WARNING")
    sizes = tuple(int(s) for s in argv[0].split(",")) if argv else SIZES
    print(json.dumps(run(sizes), indent=2))


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
