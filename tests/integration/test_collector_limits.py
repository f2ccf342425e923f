"""Per-write-key rate limits on the real stack: the Redis token bucket, 429s, SDK retries, keys' own rates."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
import redis.asyncio as aioredis

from connectors.ratelimit import RateLimiter
from tests.integration.conftest import cli, metric, post, raw_records
from touchstream.keys import ApiKey, KeyStore


def key(key_id: str, rate: int | None = None, burst: int | None = None) -> ApiKey:
    return ApiKey(key_id, "web", "write", 0.0, rate=rate, burst=burst)


def test_the_bucket_allows_the_burst_then_the_rate_and_tells_how_long_to_wait(settings):
    async def scenario() -> None:
        client = aioredis.Redis.from_url(settings.redis_url)
        limiter = RateLimiter(client, settings.redis_prefix, rate_per_s=10, burst=20)
        k = key(f"b-{uuid.uuid4().hex[:8]}")
        try:
            assert (await limiter.take(k, 15)).allowed
            assert (await limiter.take(k, 5)).allowed
            refused = await limiter.take(k, 10)  # empty: 10 tokens take ~1 s at 10/s
            assert not refused.allowed and refused.retry_after_s == 1
            await asyncio.sleep(0.35)
            assert (await limiter.take(k, 3)).allowed  # ~3.5 tokens came back
            assert not (await limiter.take(k, 3)).allowed
            # the bucket vanishes once it would be full again: idle keys cost nothing
            ttl = await client.pttl(f"{settings.redis_prefix}ratelimit:{k.key_id}")
            assert 0 < ttl <= 2000 + 1000
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_a_batch_larger_than_the_burst_passes_on_a_full_bucket_and_leaves_a_debt(settings):
    async def scenario() -> None:
        client = aioredis.Redis.from_url(settings.redis_url)
        limiter = RateLimiter(client, settings.redis_prefix, rate_per_s=100, burst=10)
        k = key(f"d-{uuid.uuid4().hex[:8]}")
        try:
            assert (await limiter.take(k, 250)).allowed  # never refused forever
            refused = await limiter.take(k, 1)
            assert not refused.allowed and refused.retry_after_s == 3  # 240 tokens of debt + 1, at 100/s
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_a_keys_own_rate_wins_over_the_default(settings):
    async def scenario() -> None:
        client = aioredis.Redis.from_url(settings.redis_url)
        limiter = RateLimiter(client, settings.redis_prefix, rate_per_s=1, burst=1)
        try:
            generous = key(f"g-{uuid.uuid4().hex[:8]}", rate=1000, burst=500)
            assert limiter.limits_of(generous) == (1000, 500)
            assert (await limiter.take(generous, 500)).allowed
            stingy = key(f"s-{uuid.uuid4().hex[:8]}")
            assert (await limiter.take(stingy, 1)).allowed
            assert not (await limiter.take(stingy, 1)).allowed
        finally:
            await client.aclose()

    asyncio.run(scenario())


def test_keys_create_stores_rate_and_burst(settings, redis_client):
    created = cli(settings, "keys", "create", "--scope", "write", "--name", "limited", "--rate", "5000",
                  "--burst", "50000").strip()
    key_id = created.split("_")[1]
    [stored] = [k for k in KeyStore(redis_client, settings.redis_prefix).list() if k.key_id == key_id]
    assert (stored.rate, stored.burst) == (5000, 50000)


@pytest.fixture(scope="module")
def slow_key(settings) -> str:
    """A write key allowed 20 events/s with a burst of 40."""
    return cli(settings, "keys", "create", "--scope", "write", "--name", "slow", "--rate", "20",
               "--burst", "40").strip()


@pytest.fixture(scope="module")
def crawling_key(settings) -> str:
    """A write key allowed 1 event/s with a burst of 40: the 10 events after its burst are refused
    however long the first request takes on a loaded machine (at 20/s they refilled in 0.5 s)."""
    return cli(settings, "keys", "create", "--scope", "write", "--name", "crawling", "--rate", "1",
               "--burst", "40").strip()


def test_over_its_rate_a_key_gets_429_with_retry_after_and_nothing_is_produced(
        collector, settings, crawling_key):
    marker = f"rl-{uuid.uuid4().hex[:8]}"
    limited_before = metric(collector, "touchstream_rate_limited_total", source="crawling")
    batch = {"batch": [{"type": "track", "userId": "u", "event": "E", "messageId": f"{marker}-a{i}"}
                       for i in range(40)]}
    assert post(collector + "/v1/batch", batch, key=crawling_key)[0] == 200
    over = {"batch": [{"type": "track", "userId": "u", "event": "E", "messageId": f"{marker}-b{i}"}
                      for i in range(10)]}
    request = urllib.request.Request(collector + "/v1/batch", data=json.dumps(over).encode(),
                                     headers={"Authorization": _basic(crawling_key)}, method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 429
    assert int(caught.value.headers["Retry-After"]) >= 1
    error = json.loads(caught.value.read())["error"]
    assert (error["field"], error["reason"]) == ("writeKey", "rate_limited")
    assert metric(collector, "touchstream_rate_limited_total", source="crawling") == limited_before + 1
    ids = {r["message_id"] for r in raw_records(settings, marker)}
    assert len(ids) == 40 and not any(i.startswith(f"{marker}-b") for i in ids)  # refused before producing


def test_the_segment_sdk_honours_429_and_every_event_arrives(collector, settings, slow_key):
    from segment.analytics import Client

    time.sleep(2.5)  # let the slow key's bucket refill after the previous test
    marker = f"sdk-rl-{uuid.uuid4().hex[:8]}"
    errors: list = []
    client = Client(write_key=slow_key, host=collector, on_error=lambda e, b: errors.append(e),
                    upload_size=30, gzip=True)
    started = time.monotonic()
    for i in range(100):
        client.track(user_id="u", event="Viewed", properties={"i": i}, message_id=f"{marker}-{i}")
    client.flush()
    client.join()
    elapsed = time.monotonic() - started
    assert errors == []
    assert len({r["message_id"] for r in raw_records(settings, marker, timeout=30)}) == 100
    assert elapsed >= 2  # 100 events at 20/s after a burst of 40: the SDK waited as told


def _basic(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
