"""messageId deduplication at the edge, shared by every collector process through Redis.

A messageId is marked *after* the broker acknowledged its event: marking first would lose the
event when the produce fails and the SDK retries (the retry would look like a duplicate). The
price is a narrow window (crash between ack and mark, or two processes racing on the same
retry) in which a duplicate reaches the raw topic; the resolve stage's exact dedup absorbs it.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis.asyncio as aioredis


class EdgeDedup:
    """Seen-messageId set with a time window, one pipeline per request."""

    def __init__(self, client: aioredis.Redis, prefix: str, window_s: int) -> None:
        self._redis = client
        self._prefix = f"{prefix}seen:"
        self._window_s = window_s

    def _key(self, source: str, message_id: str) -> str:
        # Segment scopes messageId uniqueness to a source; so do we.
        return f"{self._prefix}{source}:{message_id}"

    async def seen(self, source: str, message_ids: Sequence[str]) -> list[bool]:
        """For each messageId, whether an acknowledged event already carried it."""
        if not message_ids:
            return []
        values = await self._redis.mget([self._key(source, m) for m in message_ids])
        return [v is not None for v in values]

    async def mark(self, source: str, message_ids: Sequence[str]) -> None:
        """Remember acknowledged messageIds for the window."""
        if not message_ids:
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for message_id in message_ids:
                pipe.set(self._key(source, message_id), b"1", ex=self._window_s)
            await pipe.execute()
