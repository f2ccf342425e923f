"""Which (endpoint, idempotency key) pairs were already answered 2xx: the exactly-once ledger.

``<prefix>webhook:done:<endpoint>:<idempotency_key>`` is set (with a TTL) only after a 2xx, and
checked with one MGET per batch before anything is POSTed. Marks are written by group commit:
each 2xx queues its key and one pipeline writes whatever queued meanwhile, so a crash loses at
most the marks of the last few milliseconds while Redis still sees one round trip per burst.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Sequence

import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from connectors.webhook.exceptions import DoneStoreError
from touchstream import tombstones

log = logging.getLogger(__name__)


class DoneStore:
    """Check and record delivered pairs in Redis (asyncio client)."""

    def __init__(self, client: aioredis.Redis, prefix: str, ttl_s: int, *, write_tries: int = 5,
                 retry_s: float = 0.2) -> None:
        self._redis = client
        self._prefix = f"{prefix}webhook:done:"
        self._ttl_s = ttl_s
        self._write_tries = write_tries
        self._retry_s = retry_s
        self._pending: list[str] = []
        self._writer: asyncio.Task[None] | None = None
        self._error: BaseException | None = None

    def key(self, endpoint: str, idempotency_key: str) -> str:
        return f"{self._prefix}{endpoint}:{idempotency_key}"

    async def already_done(self, keys: Sequence[str]) -> list[bool]:
        """For each key, whether it is marked delivered (one MGET for the whole batch)."""
        if not keys:
            return []
        values = await self._redis.mget(keys)
        return [value is not None for value in values]

    def mark(self, key: str) -> None:
        """Queue ``key`` as delivered; it is written by the running (or a new) group-commit task."""
        self._pending.append(key)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="webhook-done-marks")

    async def flush(self) -> None:
        """Return once every queued mark is in Redis; :class:`DoneStoreError` if Redis refuses."""
        if self._writer is not None:
            await self._writer
        if self._pending:
            await self._drain()
        if self._pending:
            error, self._error = self._error, None
            raise DoneStoreError(f"{len(self._pending)} delivered mark(s) not written to Redis: {error}")

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def _drain(self) -> None:
        while self._pending:
            keys, self._pending = self._pending, []
            if not await self._write(keys):
                self._pending[:0] = keys  # kept for flush() to try again; never dropped
                return

    async def _write(self, keys: list[str]) -> bool:
        value = str(time.time_ns() // 1_000_000)
        for attempt in range(1, self._write_tries + 1):
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for key in keys:
                        pipe.set(key, value, ex=self._ttl_s)
                    await pipe.execute()
                return True
            except (RedisError, OSError) as exc:
                self._error = exc
                log.warning("webhook: writing %s delivered mark(s) failed (try %s of %s): %s",
                            len(keys), attempt, self._write_tries, exc)
                await asyncio.sleep(self._retry_s * attempt)
        return False


class ErasedOneIds:
    """Which OneIDs of a batch are erased (one HMGET on the tombstones): the sink does not deliver
    their triggers, which may still be in flight on the topic when the person is erased."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._key = tombstones.key(prefix)

    async def __call__(self, oneids: Sequence[str]) -> set[str]:
        if not oneids:
            return set()
        found = await self._redis.hmget(self._key, list(oneids))
        return {oneid for oneid, stone in zip(oneids, found, strict=True) if stone is not None}


def forget_deliveries(client: redis.Redis, prefix: str, idempotency_keys: Iterable[str]) -> int:
    """Delete the done marks of these triggers at every endpoint (an erasure); how many. One SCAN
    of the marks (they expire after the sink's ``done_ttl_s`` anyway): the endpoint is part of the
    key and the API process does not know the sink's endpoints."""
    wanted = {f":{key}" for key in idempotency_keys}
    if not wanted:
        return 0
    start = f"{prefix}webhook:done:"
    pattern = start.replace("[", "\\[").replace("*", "\\*").replace("?", "\\?") + "*"
    doomed = []
    for raw in client.scan_iter(match=pattern, count=1000):
        name = raw.decode() if isinstance(raw, bytes) else raw
        rest = name[len(start):]
        if any(rest.endswith(suffix) for suffix in wanted if len(rest) > len(suffix)):
            doomed.append(raw)
    removed = 0
    for i in range(0, len(doomed), 500):
        removed += int(client.delete(*doomed[i:i + 500]))
    return removed
