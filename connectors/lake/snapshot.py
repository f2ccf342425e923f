"""`touchstream lake snapshot`: profile state from Redis as one Parquet file beside the history.

The profiles are read through the profile store's public read API (``get_profile``), one per
OneID the lake knows as a survivor, and written atomically to ``profiles/snapshot.parquet``:
the ``profiles`` view, so live state can be joined with history in one query.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from connectors.lake import layout
from connectors.lake.location import LakeLocation

ReadProfile = Callable[[str], dict[str, Any] | None]

SNAPSHOT_SCHEMA = pa.schema([
    pa.field("oneid", pa.string()),
    pa.field("snapshot_at", pa.int64()),
    pa.field("as_of", pa.int64()),
    pa.field("first_seen", pa.int64()),
    pa.field("last_seen", pa.int64()),
    pa.field("last_interaction", pa.int64()),
    pa.field("tier", pa.string()),
    pa.field("score", pa.float64()),
    pa.field("tags", pa.string()),  # JSON text, as the events' properties and traits
    pa.field("aggregates", pa.string()),
    pa.field("traits", pa.string()),
    pa.field("consent", pa.string()),
])
_JSON = ("tags", "aggregates", "traits", "consent")
_INTS = ("as_of", "first_seen", "last_seen", "last_interaction")


def _row(profile: dict[str, Any], now_ms: int) -> dict[str, Any]:
    row: dict[str, Any] = {"oneid": profile["oneid"], "snapshot_at": now_ms, "tier": profile.get("tier")}
    score = profile.get("score")
    row["score"] = float(score) if isinstance(score, int | float) else None
    for name in _INTS:
        value = profile.get(name)
        row[name] = int(value) if isinstance(value, int | float) else None
    for name in _JSON:
        row[name] = json.dumps(profile.get(name), default=str, ensure_ascii=False, sort_keys=True)
    return row


def snapshot_profiles(root: Path | str | LakeLocation, oneids: Iterable[str], read: ReadProfile,
                      now_ms: int | None = None) -> int:
    """Write every existing profile of ``oneids`` to the snapshot file of the lake at ``root`` (a
    folder or a URL), whole or not at all; how many were written."""
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    rows = [_row(profile, now_ms) for oneid in oneids if (profile := read(oneid)) is not None]
    lake = root if isinstance(root, LakeLocation) else LakeLocation.open(root)
    lake.write_parquet(pa.Table.from_pylist(rows, schema=SNAPSHOT_SCHEMA),
                       lake.join(layout.PROFILES, layout.SNAPSHOT), "snapshot")
    return len(rows)
