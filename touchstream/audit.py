"""Who read which person's data, and when: every PII read through the API leaves an entry.

PIPL and GDPR ask a controller to account for access to personal data. Each read of a profile,
an identity or a person's triggers appends ``{at, actor, route, subject, found}`` to one capped
Redis stream (the newest ``MAX_ENTRIES``; ship it to long-term storage if you must keep more).
The subject is the OneID (a pseudonym) or, for a lookup that found nobody, only the identifier
type: the audit itself never holds an identifier value. The entry is written before the answer
leaves, so a read that could not be audited is not answered (Redis down: 503).
"""

from __future__ import annotations

import time
from typing import Any

import redis
import redis.asyncio as aioredis

MAX_ENTRIES = 1_000_000


def stream_key(prefix: str) -> str:
    """The Redis stream of PII reads."""
    return f"{prefix}audit:reads"


async def record_read(client: aioredis.Redis, prefix: str, *, actor: str, route: str, subject: str,
                      found: bool) -> None:
    """Append one read; raises the client's error when Redis cannot take it."""
    entry = {"at": str(time.time_ns() // 1_000_000), "actor": actor, "route": route, "subject": subject,
             "found": "1" if found else "0"}
    await client.xadd(stream_key(prefix), entry, maxlen=MAX_ENTRIES, approximate=True)  # type: ignore[arg-type]


def recent_reads(client: redis.Redis, prefix: str, count: int = 100) -> list[dict[str, Any]]:
    """The newest reads, newest first."""
    entries: Any = client.xrevrange(stream_key(prefix), count=count) or []
    out = []
    for entry_id, fields in entries:
        row = {_text(k): _text(v) for k, v in fields.items()}
        out.append({"id": _text(entry_id), **row, "found": row.get("found") == "1"})
    return out


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
