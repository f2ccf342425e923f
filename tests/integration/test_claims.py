"""The stream stages' exact dedup (streams.claims) against the real Redis script."""

from __future__ import annotations

import uuid

import redis

from streams.claims import Claims
from touchstream.settings import Settings


def _claims(settings: Settings, client: redis.Redis, window_s: int = 60) -> Claims:
    return Claims(client, f"{settings.redis_prefix}claims-{uuid.uuid4().hex[:6]}:", "resolve", window_s)


def test_first_position_wins_and_its_replay_is_processed_again(settings: Settings,
                                                              redis_client: redis.Redis) -> None:
    claims = _claims(settings, redis_client)
    assert claims.claim([("web", "m1", "0:10"), ("web", "m2", "0:11")]) == [True, True]
    # a replay after a crash: same positions, processed again (effects are idempotent)
    assert claims.claim([("web", "m1", "0:10")]) == [True]
    # the same messageId re-produced at another position is a duplicate
    assert claims.claim([("web", "m1", "3:99"), ("app", "m1", "3:100")]) == [False, True]


def test_second_copy_inside_one_batch_is_a_duplicate(settings: Settings, redis_client: redis.Redis) -> None:
    claims = _claims(settings, redis_client)
    batch = [("web", "a", "1:1"), ("web", "b", "1:2"), ("web", "a", "2:7")]
    assert claims.claim(batch) == [True, True, False]
    assert claims.claim([]) == []


def test_claims_expire_after_the_window(settings: Settings, redis_client: redis.Redis) -> None:
    claims = _claims(settings, redis_client, window_s=30)
    claims.claim([("web", "x", "0:1")])
    keys = list(redis_client.scan_iter(match=f"{claims._prefix}*"))
    assert len(keys) == 1
    assert 0 < redis_client.ttl(keys[0]) <= 30
