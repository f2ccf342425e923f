"""Per-write-key rate limit: a token bucket in Redis, shared by every collector process.

Tokens are events (a batch of N costs N). One Lua script refills the bucket from the time
elapsed (Redis's own clock, so collectors' clocks do not matter), takes the cost when the bucket
holds enough and expires the bucket when it would be full again: an idle key costs no memory and a
missing bucket is a full one. A batch larger than the burst is let through when the bucket is full
and leaves it in debt, so no batch is refused forever and the long-run rate still holds.

The decision is taken before anything is produced: a 429 never follows an accepted event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import redis.asyncio as aioredis

from touchstream.keys import ApiKey

_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
else
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
end
local need = math.min(cost, burst)
if tokens < need then
  return {0, tostring((need - tokens) / rate)}
end
tokens = tokens - cost
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {1, '0'}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether the events may go on and, when not, the whole seconds to wait (Retry-After)."""

    allowed: bool
    retry_after_s: int = 0


class RateLimiter:
    """Token buckets per write key: the key's own rate/burst, else the settings' defaults."""

    def __init__(self, client: aioredis.Redis, prefix: str, *, rate_per_s: int, burst: int) -> None:
        self._prefix = f"{prefix}ratelimit:"
        self._rate = rate_per_s
        self._burst = burst
        self._script = client.register_script(_SCRIPT)

    def limits_of(self, key: ApiKey) -> tuple[int, int]:
        """(events per second, burst) for ``key``."""
        return key.rate or self._rate, key.burst or self._burst

    async def take(self, key: ApiKey, events: int) -> Decision:
        """Take ``events`` tokens from the key's bucket; Redis errors propagate (-> 503)."""
        if events <= 0:
            return Decision(True)
        rate, burst = self.limits_of(key)
        allowed, wait = await self._script(keys=[self._prefix + key.key_id], args=[rate, burst, events])
        if int(allowed):
            return Decision(True)
        return Decision(False, max(1, math.ceil(float(wait))))
