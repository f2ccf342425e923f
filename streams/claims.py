"""Exact, replay-safe dedup inside the stream: a claim per (stage, source, messageId).

The first record to carry a messageId claims it with its own position (partition:offset).
Seeing the claim again *from the same position* is a replay after a crash, so the record is
processed again (its effects are idempotent); from another position it is a duplicate (an
SDK retry that slipped past the edge, or a record re-produced by a crashed upstream stage) and
is skipped. One pipeline per batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis


def claim_batch(client: redis.Redis, prefix: str, stage: str, window_s: int,
                items: Sequence[tuple[str, str, str]]) -> list[bool]:
    """For each (source, message_id, position): True to process, False for a duplicate."""
    if not items:
        return []
    pipe = client.pipeline(transaction=False)
    for source, message_id, position in items:
        pipe.set(f"{prefix}claim:{stage}:{source}:{message_id}", position, nx=True, ex=window_s, get=True)
    previous = pipe.execute()
    decisions = []
    seen_in_batch: dict[tuple[str, str], str] = {}
    for (source, message_id, position), before in zip(items, previous, strict=True):
        first = seen_in_batch.setdefault((source, message_id), position)
        if first != position:
            decisions.append(False)  # duplicate inside this very batch
        elif before is None:
            decisions.append(True)
        else:
            decisions.append(before.decode() == position)
    return decisions
