"""Small lakes for the history tests: Parquet files of the lake's own schema and names (no Kafka)."""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.lake import layout
from connectors.lake.layout import Span
from connectors.lake.rows import OFFSET, PARTITION, arrow_schema
from schemas.codec import EVENT, IDENTITY_MERGE, default_registry
from schemas.testing import event_record

PREFIX = "ts"
PARTITIONS = 3


def partition_of(oneid: str | None) -> int:
    return zlib.crc32((oneid or "").encode()) % PARTITIONS


def write_lake(root: Path, events: list[dict[str, Any]],
               merges: Sequence[dict[str, Any]] = ()) -> list[tuple[int, int]]:
    """Write event records (partitioned by OneID, offsets in list order) and merge records as lake
    files of the lake's own schema and names; each event's (partition, offset), in order."""
    registry = default_registry()
    offsets = [0] * PARTITIONS
    where: list[tuple[int, int]] = []
    files: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        part = partition_of(event.get("oneid"))
        where.append((part, offsets[part]))
        row = {**event, PARTITION: part, OFFSET: offsets[part]}
        files[("events", _day(event["timestamp"]), part)].append(row)
        offsets[part] += 1
    for i, record in enumerate(merges):
        files[("merges", _day(record["timestamp"]), 0)].append({**record, PARTITION: 0, OFFSET: i})
    topics = {"events": f"{PREFIX}.events.resolved", "merges": f"{PREFIX}.identity.merges"}
    schemas = {"events": EVENT, "merges": IDENTITY_MERGE}
    for (table, day, part), rows in files.items():
        span = Span(topics[table], part, rows[0][OFFSET], rows[-1][OFFSET])
        folder = layout.date_dir(root, table, day)
        folder.mkdir(parents=True, exist_ok=True)
        schema = arrow_schema(registry, schemas[table])
        pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / span.file_name, compression="zstd")
    return where


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


def merge(survivor: str, merged: str, at: int) -> dict[str, Any]:
    return {"survivor": survivor, "merged": merged, "message_id": "m", "timestamp": at, "reason": "email"}


def page(oneid: str, path: str, at: int, **fields: Any) -> dict[str, Any]:
    return event_record("page", at, oneid=oneid, anonymous_id=f"a-{oneid}", properties={"path": path},
                        **fields)


def track(oneid: str, name: str, at: int, **fields: Any) -> dict[str, Any]:
    return event_record("track", at, oneid=oneid, user_id=f"u-{oneid}", event=name, **fields)


PATHS = ["/pricing", "/pricing/enterprise", "/features/sso", "/features/SSO", "/features/a-b_c/x", "/", "",
         "/docs//x", "/features/é", "/features/", "/blog/pricing"]
VALUES = [1, 2.5, "3", "x", None, True, "1e3", " 4", {"a": 1}, [1], 10**20, 0, -1.5, "inf", "nan", 12_000,
          150_000, "450", 2**63]
TRACKS = ["Order Completed", "Demo Requested", "Coupon Applied", "Coupon Entered", "Trial Started",
          "Whitepaper Downloaded", "Webinar Attended"]


def random_event(rng: Any, oneid: str, at: int) -> dict[str, Any]:
    """One event of a varied stream: page views given by path, URL or context.page; tracks with
    odd properties; identifies with odd traits; some with a clock ahead of receipt."""
    kind = rng.choice(["page", "page", "page", "url", "context", "track", "track", "identify", "screen"])
    extra: dict[str, Any] = {}
    if rng.random() < 0.05:  # the client's clock runs ahead: filed under receipt + skew
        extra["received_at"] = at - rng.randint(0, 3_600_000)
    if kind == "page":
        return event_record("page", at, oneid=oneid, name=rng.choice([None, "Pricing", "Home"]),
                            properties={"path": rng.choice(PATHS)}, **extra)
    if kind == "url":
        site = rng.choice(["https://x.cn", "http://x.cn:8080", "//x.cn", "x.cn"])
        url = site + rng.choice(PATHS) + "?q=1"
        return event_record("page", at, oneid=oneid, properties={"url": url}, **extra)
    if kind == "context":
        context = {"page": {"path": rng.choice(PATHS), "title": "T"}}
        return event_record("page", at, oneid=oneid, context=context, properties={"title": "t"}, **extra)
    if kind == "screen":
        return event_record("screen", at, oneid=oneid, name="Home", **extra)
    if kind == "track":
        props = {k: rng.choice(VALUES) for k in ("revenue", "total", "order_id") if rng.random() < 0.7}
        return event_record("track", at, oneid=oneid, event=rng.choice(TRACKS), properties=props, **extra)
    words = [rng.choice(["software", "retail", "finance"]), rng.choice(["CTO", "engineer", "销售总监"])]
    traits = {k: rng.choice([*VALUES, *words])
              for k in ("employees", "industry", "title", "marketing_consent") if rng.random() < 0.6}
    if at % 3:  # what `touchstream rfm` sets (from the time, not the generator: the stream stays the same)
        traits["rfm_segment"] = ("cant_lose_them", "champions")[at % 3 - 1]
    return event_record("identify", at, oneid=oneid, traits=traits, **extra)


def random_stream(seed: int, count: int, people: int, start: int, spread_ms: int) -> list[dict[str, Any]]:
    """``count`` events of ``people`` persons over ``spread_ms`` from ``start``, mostly in time order
    (some late, a few very late, some at the same millisecond)."""
    import random

    rng = random.Random(seed)
    out = []
    for i in range(count):
        at = start + i * spread_ms // count
        if rng.random() < 0.1:
            at -= rng.choice([1, 60_000, 3 * 3_600_000, 2 * 86_400_000])  # late, some past the lateness
        out.append(random_event(rng, f"p{rng.randrange(people)}", max(at, 0)))
    return out
