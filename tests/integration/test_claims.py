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


def test_a_claim_is_remembered_for_the_window_then_forgotten(settings: Settings,
                                                             redis_client: redis.Redis) -> None:
    claims = _claims(settings, redis_client, window_s=400)  # generations of 200 s
    clock = {"generation": 1000}
    claims._generation = lambda: clock["generation"]  # type: ignore[method-assign]
    assert claims.claim([("web", "x", "0:1")]) == [True]
    clock["generation"] = 1002  # 400-600 s later: at least the window, so still remembered
    assert claims.claim([("web", "x", "5:5")]) == [False]
    assert claims.position("web", "x") == "0:1"
    clock["generation"] = 1003  # 600 s or more later: past 1.5x the window, new again
    assert claims.position("web", "x") is None
    assert claims.claim([("web", "x", "5:6")]) == [True]


def test_claims_live_in_few_expiring_hashes(settings: Settings, redis_client: redis.Redis) -> None:
    claims = Claims(redis_client, f"{settings.redis_prefix}claims-{uuid.uuid4().hex[:6]}:", "profile", 400)
    claims.claim([("web", f"m{i}", f"0:{i}") for i in range(1000)])
    keys = list(redis_client.scan_iter(match=f"{claims.base}*"))
    assert 1 <= len(keys) <= 16
    assert sum(redis_client.hlen(k) for k in keys) == 1000
    assert all(400 < redis_client.ttl(k) <= 600 for k in keys)  # window + one generation


def test_a_released_claim_lets_the_record_in_again_from_a_new_position(settings, redis_client):
    claims = _claims(settings, redis_client)
    assert claims.claim([("web", "poison", "0:7"), ("web", "other", "0:8")]) == [True, True]
    claims.release("web", "poison")
    assert claims.claim([("web", "poison", "2:70"), ("web", "other", "2:71")]) == [True, False]
    assert claims.position("web", "poison") == "2:70"
