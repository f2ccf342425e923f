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
from collections.abc import Sequence

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from connectors.webhook.exceptions import DoneStoreError

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
