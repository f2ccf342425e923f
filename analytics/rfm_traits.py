"""RFM results back into profiles, as identify events through the pipeline.

Why events and not a write to ``profiles.store``: the profile stage is the one writer of
profile state. An identify event on ``<prefix>.events.resolved``, stamped with the survivor's
OneID and keyed by it as the resolve stage keys its output, reaches the profile stage like any
other: traits are applied (the latest event time wins), claims and watermarks make a replay
harmless, merges redirect it, profile rules and triggers see it (the shipped ``rfm_win_back``
trigger fires on ``rfm_segment: cant_lose_them``), and the lake keeps it, which is how the next
run knows what each profile already holds. Writing to Redis beside the stage would race its
batches and bypass all of that.

Only changes are sent: a person whose segment and score equal the last ones sent (the newest
identify of :data:`SOURCE` in the lake, under the survivor) gets nothing, so a schedule every
hour costs a handful of events, not one per customer. The resolve stage is skipped on purpose:
the survivor is already known and the event carries no identifier to resolve.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from analytics.touches import LINKS, build_links

#: The source of the identify events; their messageIds are unique per person and run.
SOURCE = "touchstream-rfm"
TRAITS = ("rfm_segment", "rfm_score")


def last_sent(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[str | None, int | None]]:
    """survivor OneID -> (rfm_segment, rfm_score) of the newest RFM identify in the lake."""
    build_links(con)
    rows = con.sql(f"""
        SELECT coalesce(l.survivor, e.oneid) AS person, arg_max(e.traits, e.timestamp) AS traits
        FROM events e LEFT JOIN {LINKS} l ON l.oneid = e.oneid
        WHERE e.type = 'identify' AND e.source = '{SOURCE}' AND e.oneid IS NOT NULL
        GROUP BY 1
    """).fetchall()  # noqa: S608 - the module's own names
    out: dict[str, tuple[str | None, int | None]] = {}
    for person, traits in rows:
        held = json.loads(traits) if traits else {}
        score = held.get("rfm_score")
        out[person] = (held.get("rfm_segment"), score if isinstance(score, int) else None)
    return out


def changes(table: pa.Table, sent: dict[str, tuple[str | None, int | None]]) -> list[dict[str, Any]]:
    """Rows of an ``analytics.rfm.rfm`` table whose segment or score differ from what was sent."""
    return [row for row in table.select(["oneid", "segment", "rfm_score"]).to_pylist()
            if sent.get(row["oneid"]) != (row["segment"], row["rfm_score"])]


def identify_event(oneid: str, segment: str, score: int, now_ms: int, run: str) -> dict[str, Any]:
    """The Event record (``schemas/event.avsc``) setting one profile's RFM traits."""
    digest = hashlib.sha256(f"{run}\x00{oneid}".encode()).hexdigest()[:40]
    return {
        "message_id": f"rfm-{digest}", "type": "identify", "event": None, "name": None,
        "anonymous_id": None, "user_id": None, "previous_id": None, "group_id": None,
        "timestamp": now_ms, "original_timestamp": None, "sent_at": None, "received_at": now_ms,
        "source": SOURCE, "identifiers": [], "invalid_identifiers": [],
        "properties": "{}", "traits": json.dumps({"rfm_segment": segment, "rfm_score": score}),
        "context": json.dumps({"library": {"name": SOURCE}}), "integrations": "{}", "trusted": True,
        "oneid": oneid,
    }


def publish(rows: Sequence[dict[str, Any]], *, now_ms: int, run: str,
            encode: Callable[[dict[str, Any]], bytes], send: Callable[[list[tuple[bytes, bytes]]], None],
            batch: int = 5000) -> int:
    """Send one identify per row (``oneid``, ``segment``, ``rfm_score``) through ``send``, which
    returns once the broker acknowledged its batch; the number sent."""
    sent = 0
    for start in range(0, len(rows), batch):
        chunk = rows[start:start + batch]
        send([(row["oneid"].encode(), encode(identify_event(row["oneid"], row["segment"], row["rfm_score"],
                                                             now_ms, run)))
              for row in chunk])
        sent += len(chunk)
    return sent
