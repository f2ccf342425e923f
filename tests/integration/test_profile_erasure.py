"""Erasing profile state on the real Redis: every key, timer and outbox entry goes, and nothing
stamped with an erased (tombstoned) OneID, nor a merge naming one, creates state again."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis

from profiles import layout
from profiles.rules import DEFAULT_RULES_PATH, load_rules_file
from profiles.store import ProfileStore
from tests.unit.profiles.factory import T0, S, identify, numbered, page, track
from touchstream import tombstones

RULES = load_rules_file(DEFAULT_RULES_PATH, strict=True)


@pytest.fixture()
def prefix(settings) -> str:
    return f"{settings.redis_prefix}pe:{uuid.uuid4().hex[:8]}:"


@pytest.fixture()
def store(redis_client, prefix) -> ProfileStore:
    return ProfileStore(redis_client, prefix, RULES)


def new_id() -> str:
    return "o_" + uuid.uuid4().hex[:16]


def tombstone(client: redis.Redis, prefix: str, *oneids: str) -> None:
    client.hset(tombstones.key(prefix), mapping={o: tombstones.value(T0, oneids[0]) for o in oneids})


def keys_naming(client: redis.Redis, prefix: str, *oneids: str) -> list[Any]:
    """Every key, due-set member and outbox field under ``prefix`` naming one of ``oneids``."""
    found: list[Any] = []
    for key in client.scan_iter(match=f"{prefix}*", count=1000):
        if key == tombstones.key(prefix).encode():
            continue
        if any(o.encode() in key for o in oneids):
            found.append(key)
        kind = client.type(key)
        members = (client.zrange(key, 0, -1) if kind == b"zset" else
                   client.hkeys(key) if kind == b"hash" and key.endswith(layout.OUTBOX_KEY.encode()) else [])
        found += [(key, m) for m in members if any(o.encode() in m for o in oneids)]
    return found


def person(oneid: str) -> list[dict[str, Any]]:
    """Consent, a pricing view (a dwell timer), an order (delayed triggers), a demo request (fired)."""
    return [identify({"marketing_consent": True, "email": "ann@example.cn"}, T0, oneid),
            page("/pricing", T0 + S, oneid), track("Order Completed", T0 + 2 * S, oneid,
                                                   properties={"revenue": 10, "order_id": "o-1"}),
            track("Demo Requested", T0 + 3 * S, oneid)]


def test_erase_removes_state_timers_and_outbox_of_the_survivor_and_its_aliases(store, redis_client, prefix):
    survivor, alias, other = new_id(), new_id(), new_id()
    fired = store.apply_batch(0, numbered(person(survivor) + person(alias) + person(other)), T0 + 4 * S)
    assert {t["oneid"] for t in fired.triggers} == {survivor, alias, other}  # in the outbox until acked
    store.merge_profiles(survivor, alias)
    assert keys_naming(redis_client, prefix, survivor) and keys_naming(redis_client, prefix, alias)
    tombstone(redis_client, prefix, survivor)  # the erasure writes it first

    erased = store.erase_profiles([survivor])  # the alias is found through the merge
    assert set(erased.oneids) == {survivor, alias}
    theirs = [t for t in fired.triggers if t["oneid"] in (survivor, alias)]
    assert erased.keys >= 4 and erased.timers >= 2 and erased.outbox == len(theirs)
    assert set(erased.fired_keys) == {t["idempotency_key"] for t in theirs}
    assert keys_naming(redis_client, prefix, survivor, alias) == []
    assert store.get_profile(survivor) is None and store.get_profile(alias) is None
    assert store.get_profile(other) is not None and keys_naming(redis_client, prefix, other)
    again = store.erase_profiles([survivor, alias])  # idempotent: a resumed erasure finds nothing
    assert (again.keys, again.timers, again.outbox) == (0, 0, 0)


def test_events_stamped_with_an_erased_oneid_are_refused_and_reported(store, redis_client, prefix):
    gone, alias, live = new_id(), new_id(), new_id()
    store.apply_batch(0, numbered(person(gone) + person(alias)), T0 + 4 * S)
    store.merge_profiles(gone, alias)
    tombstone(redis_client, prefix, gone, alias)
    store.erase_profiles([gone])
    late = [page("/pricing", T0 + 9 * S, gone), track("Demo Requested", T0 + 9 * S, alias),
            page("/", T0 + 9 * S, live)]
    result = store.apply_batch(1, numbered(late, start=10), T0 + 10 * S)
    assert sorted(r["oneid"] for r in result.erased) == sorted([gone, alias])
    assert {r["message_id"] for r in result.erased} == {late[0]["message_id"], late[1]["message_id"]}
    assert result.triggers == [] and keys_naming(redis_client, prefix, gone, alias) == []
    assert store.get_profile(live) is not None  # the rest of the batch is applied
    # a merge record still in flight names the erased person: refused, nothing created
    [outcome] = store.merge_many([(gone, live)])
    assert outcome["refused"] and keys_naming(redis_client, prefix, gone) == []
    assert store.get_profile(live) is not None


def test_an_erasure_between_read_and_apply_is_refused_by_the_script(store, redis_client, prefix):
    gone = new_id()
    steps = store._core.apply_batch(0, numbered(person(gone)), T0 + 4 * S)
    request = next(steps)
    reply = store._script(*request[1:])
    tombstone(redis_client, prefix, gone)  # erased after the read, before the apply
    request = steps.send(reply)
    try:
        steps.send(store._script(*request[1:]))
    except StopIteration as done:
        result = done.value
    assert len(result.erased) == 4 and result.triggers == []
    assert keys_naming(redis_client, prefix, gone) == []


def test_segment_memberships_end_with_an_exit_record_and_an_erased_person_never_enters(
        store, redis_client, prefix):
    gone, other = new_id(), new_id()
    store.apply_batch(0, numbered(person(gone) + person(other)), T0 + 4 * S)
    entered = store.set_members("lapsed", [(gone, True), (other, True)], T0, "sql")
    assert {c["oneid"] for c in entered} == {gone, other}  # waiting in the segments outbox
    tombstone(redis_client, prefix, gone)
    erased = store.erase_profiles([gone])
    assert erased.memberships == 1
    members = redis_client.zrange(f"{prefix}{layout.SEGMENT_MEMBERS_KEY}lapsed", 0, -1)
    assert members == [other.encode()]
    lines = [v.decode() for k, v in redis_client.hgetall(f"{prefix}{layout.SEGMENT_OUTBOX_KEY}").items()
             if gone.encode() in k]
    assert len(lines) == 1 and layout.SEGMENT_EXITED in lines[0] and layout.REASON_DELETED in lines[0]
    assert store.set_members("lapsed", [(gone, True)], T0 + S, "sql") == []  # refused: erased
