"""Lakes for the analytics tests, written straight to Parquet in the lake's own layout.

:class:`LakeWriter` collects rows (events, merges, triggers, profiles) and writes one file per
table and date under the names ``connectors.lake.layout`` gives, with the columns of
``connectors.lake.rows.arrow_schema``: what the sink would have written, without Kafka.
:func:`journeys` is a generated data set of thousands of people (deterministic seed).
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from connectors.lake import files, layout
from connectors.lake.rows import OFFSET, PARTITION, arrow_schema
from connectors.lake.snapshot import SNAPSHOT_SCHEMA
from schemas.codec import EVENT, IDENTITY_MERGE, SEGMENT_CHANGE, TRIGGER, default_registry
from schemas.testing import event_record

DAY = 86_400_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z, a Monday


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d")


@dataclass
class LakeWriter:
    events: list[dict[str, Any]] = field(default_factory=list)
    merges: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    profiles: list[dict[str, Any]] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)

    def event(self, oneid: str, type_: str, ts: int, **fields: Any) -> dict[str, Any]:
        record = event_record(type_, ts, oneid=oneid, **fields)
        self.events.append(record)
        return record

    def track(self, oneid: str, name: str, ts: int, **fields: Any) -> dict[str, Any]:
        return self.event(oneid, "track", ts, event=name, **fields)

    def page(self, oneid: str, path: str, ts: int, **fields: Any) -> dict[str, Any]:
        properties = {"path": path, **fields.pop("properties", {})}
        return self.event(oneid, "page", ts, name=path, properties=properties, **fields)

    def merge(self, survivor: str, merged: str, ts: int) -> None:
        self.merges.append({"survivor": survivor, "merged": merged, "message_id": f"merge-{merged}",
                            "timestamp": ts, "identifiers": [], "reason": "email"})

    def trigger(self, oneid: str, rule: str, ts: int, values: dict[str, Any] | None = None) -> None:
        self.triggers.append({"rule": rule, "oneid": oneid, "idempotency_key": f"{rule}:{oneid}:{ts}",
                              "event_time": ts, "fired_at": ts, "message_id": None, "marketing": False,
                              "values": json.dumps(values or {})})

    def segment(self, oneid: str, segment: str, entered: bool, ts: int) -> None:
        version = sum(1 for c in self.segments if c["segment"] == segment) + 1
        self.segments.append({"type": "segment_entered" if entered else "segment_exited", "segment": segment,
                              "oneid": oneid, "idempotency_key": f"{segment}:{oneid}:{version}",
                              "version": version, "reason": "event", "as_of": ts, "changed_at": ts,
                              "message_id": None, "survivor": None, "facts": "{}"})

    def profile(self, oneid: str, snapshot_at: int, *, as_of: int, last_interaction: int | None = None,
                tags: list[str] | None = None, score: float | None = None) -> None:
        self.profiles.append({"oneid": oneid, "snapshot_at": snapshot_at, "as_of": as_of, "first_seen": None,
                              "last_seen": as_of, "last_interaction": last_interaction, "tier": None,
                              "score": score, "tags": json.dumps(tags or []), "aggregates": "{}",
                              "traits": "{}", "consent": "null"})

    def write(self, root: Path) -> Path:
        registry = default_registry()
        for table, schema, rows, date_field in (("events", EVENT, self.events, "timestamp"),
                                                ("merges", IDENTITY_MERGE, self.merges, "timestamp"),
                                                ("triggers", TRIGGER, self.triggers, "fired_at"),
                                                ("segments", SEGMENT_CHANGE, self.segments, "changed_at")):
            by_day: dict[str, list[dict[str, Any]]] = defaultdict(list)
            for offset, row in enumerate(rows):
                by_day[_day(row[date_field])].append(row | {PARTITION: 0, OFFSET: offset})
            for day, day_rows in by_day.items():
                span = layout.Span(f"ts.{table}", 0, day_rows[0][OFFSET], day_rows[-1][OFFSET])
                path = layout.date_dir(root, table, day) / span.file_name
                table_rows = pa.Table.from_pylist(day_rows, schema=arrow_schema(registry, schema))
                files.write_parquet(table_rows, path)
        if self.profiles:
            files.write_parquet(pa.Table.from_pylist(self.profiles, schema=SNAPSHOT_SCHEMA),
                                root / layout.PROFILES / layout.SNAPSHOT)
        return root


PATHS = ["/", "/blog/a", "/blog/b", "/features/sync", "/features/api", "/pricing", "/pricing/team", "/docs"]
SOURCES = ["google", "wechat", "newsletter", None]
MEDIUMS = {"google": "cpc", "wechat": "social", "newsletter": "email"}


def journeys(people: int = 3000, seed: int = 7) -> LakeWriter:
    """A generated data set: ``people`` visitors over twelve weeks browsing, signing up, starting
    trials, requesting demos and ordering (each step less likely, some after the window), some
    coming back in later weeks, some merged into another OneID, some events delivered twice,
    score_crossed triggers for the leads who heat up, and a profiles snapshot."""
    rng = random.Random(seed)
    lake = LakeWriter()
    end = T0 + 12 * 7 * DAY
    for n in range(people):
        oneid = f"p{n:05d}"
        start = T0 + rng.randrange(0, 11 * 7 * DAY)
        ids = [oneid]
        if rng.random() < 0.15:  # a second OneID for the same person, merged later
            ids.append(f"p{n:05d}-b")
        t, first = start, len(lake.events)
        utm = rng.choice(SOURCES)
        props = {"utm_source": utm} if utm else {}

        def pick(ids: list[str] = ids) -> str:
            return rng.choice(ids)
        for visit in range(rng.randrange(1, 6)):
            campaign = {"campaign": {"source": utm, "medium": MEDIUMS[utm]}} if utm and not visit else {}
            lake.page(pick(), rng.choice(PATHS), t, properties=props, context=campaign)
            t += rng.randrange(1, 3 * DAY // 2)
        for name, chance in (("Signed Up", 0.5), ("Trial Started", 0.6), ("Demo Requested", 0.5),
                             ("Order Completed", 0.6)):
            if rng.random() > chance:
                break
            t += rng.choice([0, rng.randrange(1, DAY), rng.randrange(DAY, 9 * DAY)])
            known = [{"type": "email", "value": f"{oneid}@example.cn"}] if name == "Signed Up" else []
            record = lake.track(pick(), name, t, properties={"revenue": rng.randrange(10, 500)} | props,
                                identifiers=known)
            if rng.random() < 0.03:
                lake.events.append(dict(record))  # the same message twice (a replay after a crash)
        if rng.random() < 0.2:  # out of order: an earlier demo request than the signup
            lake.track(pick(), "Demo Requested", start - rng.randrange(0, 2 * DAY))
        for week in range(1, 12):
            if rng.random() < 0.35 / week:
                lake.page(pick(), rng.choice(PATHS), start + week * 7 * DAY + rng.randrange(0, 7 * DAY))
        if len(ids) > 1:
            lake.merge(oneid, ids[1], start + rng.randrange(0, 5 * DAY))
        if rng.random() < 0.4:
            lake.trigger(pick(), "lead_warm", start + rng.randrange(0, 8 * DAY), {"above": 30})
        if rng.random() < 0.3:
            lake.trigger(pick(), "mql_reached", start + rng.randrange(0, 10 * DAY), {"above": 60})
        if rng.random() < 0.2:
            lake.trigger(pick(), "demo_requested", start + rng.randrange(0, 14 * DAY))
        if rng.random() < 0.15:  # in a segment for a while (sometimes still)
            entered = start + rng.randrange(0, 30 * DAY)
            lake.segment(oneid, "hot_leads", True, entered)
            if rng.random() < 0.6:
                lake.segment(oneid, "hot_leads", False, entered + rng.randrange(0, 30 * DAY))
        last = min(end, max(e["timestamp"] for e in lake.events[first:]))
        lake.profile(oneid, end, as_of=last, last_interaction=last,
                     tags=["high_intent"] if rng.random() < 0.1 else [])
    lake.events = [e for e in lake.events if e["timestamp"] <= end]
    rng.shuffle(lake.events)
    return lake
