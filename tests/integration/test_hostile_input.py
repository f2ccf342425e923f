"""A hostile volley through a public write key, then ordinary visitors: nothing stops, nothing is lost.

Every case below was tried as an attacker or a buggy client would (issue 10). Each hostile message
is either accepted and safely processed, or answered with a 4xx naming the field and reason, or
dead-lettered with a reason; afterwards every ordinary visitor, on every partition, is profiled.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from confluent_kafka import Producer

from schemas.codec import default_registry
from streams.topics import Topics
from tests.integration.conftest import TopicReader, iso, post, wait_caught_up, wait_triggers_acknowledged
from touchstream.settings import Settings

NOW = lambda: int(time.time() * 1000)  # noqa: E731


def _nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


def _raw(message: dict, **replacements: str) -> bytes:
    """JSON text of ``message`` with placeholder strings swapped for raw (non-JSON-serialisable) text."""
    text = json.dumps(message)
    for placeholder, raw in replacements.items():
        text = text.replace(f'"{placeholder}"', raw)
    return text.encode()


def _rejections(run: str) -> list[tuple[str, str, bytes, str]]:
    """(case, endpoint, raw body, expected reason) of single messages the edge must refuse."""
    def who(case: str) -> dict:
        return {"anonymousId": f"h-{case}-{run}", "messageId": f"h-{case}-{run}"}

    order = {"event": "Order Completed", "properties": {"revenue": "X"}}
    return [
        ("nan", "/v1/track", _raw({**who("nan"), **order}, X="NaN"), "bad_number"),
        ("infinity", "/v1/track", _raw({**who("inf"), **order}, X="-Infinity"), "bad_number"),
        ("overflow", "/v1/track", _raw({**who("ovf"), **order}, X="1e999"), "bad_number"),
        ("huge_int", "/v1/track", _raw({**who("int"), **order}, X="9" * 5000), "bad_number"),
        ("surrogate", "/v1/page", _raw({**who("sur"), "name": "X"}, X='"\\ud800"'), "bad_unicode"),
        ("surrogate_key", "/v1/track", _raw({**who("sk"), "event": "E", "properties": {"X": 1}},
                                            X='"\\udfff"'), "bad_unicode"),
        ("deep_body", "/v1/track", _raw({**who("deep"), "event": "E", "properties": "X"}, X=_nested(5000)),
         "too_deep"),
        ("deep_message", "/v1/track", _raw({**who("d40"), "event": "E", "properties": "X"}, X=_nested(40)),
         "too_deep"),
        ("too_many_traits", "/v1/identify",
         json.dumps({**who("tmt"), "traits": {f"t{i}": i for i in range(300)}}).encode(), "too_many_traits"),
        ("long_trait_key", "/v1/identify", json.dumps({**who("ltk"), "traits": {"k" * 300: 1}}).encode(),
         "too_long"),
        ("too_many_identifiers", "/v1/track",
         json.dumps({**who("tmi"), "event": "E", "context": {"externalIds": [
             {"id": f"x{i}-{run}", "type": "crm_id", "collection": "users", "encoding": "none"}
             for i in range(30)]}}).encode(), "too_many_identifiers"),
    ]


@pytest.fixture(scope="module")
def readers(settings: Settings, worker):  # type: ignore[no-untyped-def]
    topics = Topics.of(settings)
    opened = {"resolved": TopicReader(settings, topics.resolved, "event"),
              "deadletter": TopicReader(settings, topics.deadletter, "deadletter"),
              "triggers": TopicReader(settings, topics.triggers, "trigger")}
    yield opened
    for reader in opened.values():
        reader.close()


def test_a_hostile_volley_stops_nothing_and_every_ordinary_visitor_is_profiled(
        settings, collector, write_key, worker, readers, redis_client):
    run = uuid.uuid4().hex[:8]
    now = NOW() - 60_000
    accepted: dict[str, str] = {}  # messageId -> case, for hostile messages the edge let through

    # 1. Refused at the edge: a 400 naming the field and the reason, never a 5xx.
    for case, path, body, reason in _rejections(run):
        status, answer = post(collector + path, None, key=write_key, raw=body)
        assert status == 400, (case, status, answer)
        assert answer["error"]["reason"] == reason, (case, answer)
        assert answer["error"]["field"], (case, answer)

    # 2. One batch mixing good and bad messages: the bad ones reject only themselves.
    good = {"type": "track", "event": "Batch Good", "anonymousId": f"h-bg-{run}", "messageId": f"h-bg-{run}"}
    batch = (b'{"batch":[' + json.dumps(good).encode() + b","
             + _raw({"type": "page", "anonymousId": f"h-bs-{run}", "name": "X"}, X='"\\ud83d"') + b","
             + _raw({"type": "track", "event": "E", "anonymousId": f"h-bn-{run}",
                     "properties": {"revenue": "X"}}, X="NaN") + b"]}")
    status, answer = post(collector + "/v1/batch", None, key=write_key, raw=batch)
    assert status == 200, answer
    assert answer["accepted"] == 1
    rejected = sorted((r["index"], r["reason"]) for r in answer["rejected"])
    assert rejected == [(1, "bad_unicode"), (2, "bad_number")]
    accepted[good["messageId"]] = "batch_good"

    # 3. Accepted, and must be processed without harm.
    unparsable = {"anonymousId": f"h-url-{run}", "messageId": f"h-url-{run}", "name": "Pricing",
                  "properties": {"url": "http://["}, "timestamp": iso(now)}
    future = {"anonymousId": f"h-fut-{run}", "messageId": f"h-fut-{run}", "name": "Home",
              "properties": {"path": "/"}, "timestamp": iso(NOW() + 23 * 3600 * 1000)}
    for case, body in (("unparsable_url", unparsable), ("future_dated", future)):
        status, answer = post(collector + "/v1/page", body, key=write_key)
        assert status == 200, (case, answer)
        accepted[body["messageId"]] = case
    # 50 identifies of one person with 190 distinct traits each: 9,500 trait fields in one batch
    many = [{"type": "identify", "anonymousId": f"h-many-{run}", "messageId": f"h-many-{run}-{i}",
             "traits": {f"trait_{i}_{j}": j for j in range(190)}} for i in range(50)]
    status, answer = post(collector + "/v1/batch", {"batch": many}, key=write_key)
    assert status == 200 and answer["accepted"] == 50, answer
    accepted.update({m["messageId"]: "many_traits" for m in many})
    # 30 demo requests at once from one person: the shipped rule's cooldown lets one through
    demos = [{"type": "track", "event": "Demo Requested", "anonymousId": f"h-demo-{run}",
              "messageId": f"h-demo-{run}-{i}", "timestamp": iso(now + i)} for i in range(30)]
    status, answer = post(collector + "/v1/batch", {"batch": demos}, key=write_key)
    assert status == 200 and answer["accepted"] == 30, answer
    accepted.update({m["messageId"]: "demo_flood" for m in demos})
    # bytes that are not an event at all, straight onto the raw topic
    producer = Producer({"bootstrap.servers": settings.broker})
    producer.produce(Topics.of(settings).raw, b"\x00garbage that is not avro", b"h-garbage")
    assert producer.flush(30) == 0

    # 4. Ordinary visitors afterwards, spread over every partition; the future-dated person too.
    visitors = [f"v{i}-{run}" for i in range(60)]
    ordinary = [{"type": "page", "anonymousId": v, "messageId": f"{v}-{n}", "name": "Docs",
                 "properties": {"path": f"/docs/{n}"}, "timestamp": iso(now + 1000 + n)}
                for v in [*visitors, f"h-fut-{run}"] for n in range(2)]
    status, answer = post(collector + "/v1/batch", {"batch": ordinary}, key=write_key)
    assert status == 200 and answer["accepted"] == len(ordinary), answer

    topics = Topics.of(settings)
    wait_caught_up(settings, topics.raw)
    wait_caught_up(settings, topics.resolved)
    wait_triggers_acknowledged(settings)
    assert worker.proc.poll() is None, "the worker died"

    resolved = {r["message_id"]: r for r in readers["resolved"].until(
        lambda rs: {m["messageId"] for m in ordinary} <= {r["message_id"] for r in rs}, 60)}
    letters = readers["deadletter"].until(
        lambda ds: any(d["original"] == b"\x00garbage that is not avro" for d in ds), 30)
    assert any(d["reason"] == "avro_decode" and d["original"] == b"\x00garbage that is not avro"
               for d in letters)
    dead_ids = set()
    decode_event = default_registry().decoder("event")
    for letter in letters:
        if letter["reason"] != "avro_decode":
            dead_ids.add(decode_event(letter["original"])["message_id"])
    for message_id, case in accepted.items():
        assert message_id in resolved or message_id in dead_ids, f"{case}: {message_id} was lost"

    # every ordinary visitor's profile was updated: the profile stage never stalled
    from apps import factory

    store = factory.profile_store(settings, redis_client)
    for visitor in visitors:
        oneid = resolved[f"{visitor}-0"]["oneid"]
        profile = store.get_profile(oneid)
        assert profile is not None and profile["aggregates"]["page_views_30d"] == 2, visitor
    # the future-dated page did not make this person's real pages "late"
    future_person = store.get_profile(resolved[f"h-fut-{run}-0"]["oneid"])
    assert future_person["aggregates"]["page_views_30d"] >= 2
    # traits are bounded per profile; the demo flood fired one trigger
    crowded = store.get_profile(resolved[f"h-many-{run}-0"]["oneid"])
    assert 0 < len(crowded["traits"]) <= settings.max_traits_per_profile
    demo_oneid = resolved[f"h-demo-{run}-0"]["oneid"]
    readers["triggers"].until(lambda ts: any(t["oneid"] == demo_oneid for t in ts), 30)
    fired = [t for t in readers["triggers"].records
             if t["oneid"] == demo_oneid and t["rule"] == "demo_requested"]
    assert len(fired) == 1
