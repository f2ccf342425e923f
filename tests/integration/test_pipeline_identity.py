"""OneID end to end on the real Kafka and Redis: collector -> raw -> worker -> resolved."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis
from confluent_kafka import Producer

from apps import factory
from identity.quality import score
from identity.synthetic import generate
from schemas.codec import default_registry
from streams.topics import Topics, create_topics
from tests.integration.conftest import (
    TopicReader,
    WorkerProcess,
    api,
    cli,
    free_port,
    iso,
    post,
    wait_caught_up,
    wait_resolved,
)


@pytest.fixture(scope="module")
def resolved(settings, worker):
    reader = TopicReader(settings, Topics.of(settings).resolved, "event")
    yield reader
    reader.close()


@pytest.fixture(scope="module")
def admin_key(settings):
    return cli(settings, "keys", "create", "--scope", "admin", "--name", "dpo").strip()



def mobile() -> str:
    """A valid, random Chinese mobile number in E.164."""
    return f"+86139{uuid.uuid4().int % 10**8:08d}"



def test_one_person_across_channels_becomes_one_oneid(
        collector, write_key, read_key, resolved):
    m = uuid.uuid4().hex[:8]
    phone = mobile()
    now = int(time.time() * 1000) - 60_000
    steps = [
        ("/v1/page", {"anonymousId": f"web-{m}", "name": "Pricing", "properties": {"path": "/pricing"}}),
        ("/v1/track", {"anonymousId": f"app-{m}", "event": "App Opened",
                       "context": {"device": {"id": f"dev-{m}"}}}),
        ("/v1/track", {"anonymousId": f"mini-{m}", "event": "Mini Program Opened",
                       "context": {"externalIds": [{"id": f"oW-{m}", "type": "wechat_openid"}]}}),
        ("/v1/track", {"anonymousId": f"store-{m}", "event": "Order Completed",
                       "context": {"traits": {"phone": f"+86 {phone[3:6]} {phone[6:10]} {phone[10:]}"}}}),
        # linking events: login on the web, the app and WeChat binding, the store phone on the profile
        ("/v1/identify", {"anonymousId": f"web-{m}", "userId": f"u-{m}",
                          "traits": {"email": f"Person.{m}@163.com"}}),
        ("/v1/identify", {"anonymousId": f"app-{m}", "userId": f"u-{m}",
                          "context": {"device": {"id": f"dev-{m}"}}}),
        ("/v1/identify", {"anonymousId": f"mini-{m}", "userId": f"u-{m}",
                          "traits": {"wechat_openid": f"oW-{m}"}}),
    ]
    ids = []
    for i, (path, body) in enumerate(steps):
        body = {**body, "messageId": f"x-{m}-{i}", "timestamp": iso(now + i * 1000)}
        assert post(collector + path, body, key=write_key)[0] == 200
        ids.append(body["messageId"])
    link = {"messageId": f"x-{m}-link", "userId": f"u-{m}", "traits": {"phone": phone},
            "timestamp": iso(now + 10_000)}
    assert post(collector + "/v1/identify", link, key=write_key)[0] == 200
    wait_resolved(resolved, {*ids, link["messageId"]})

    status, body = api(collector, "GET", f"/v1/identities/email/{'PERSON.' + m}@163.COM", read_key)
    assert status == 200, body
    oneid = body["oneid"]
    assert body["identifiers"]["user_id"] == [f"u-{m}"]
    assert set(body["identifiers"]["anonymous_id"]) == {f"web-{m}", f"app-{m}", f"mini-{m}", f"store-{m}"}
    assert body["identifiers"]["device_id"] == [f"dev-{m}"]
    assert body["identifiers"]["wechat_openid"] == [f"oW-{m}"]
    # any spelling of the phone finds the same person
    local = phone.replace("+86", "")
    status, by_phone = api(collector, "GET", f"/v1/identities/phone/{local[:3]}%20{local[3:7]}%20{local[7:]}",
                           read_key)
    assert (status, by_phone["oneid"]) == (200, oneid)  # (how fast: `make bench`, not a test)


def test_family_device_never_merges_two_people(collector, write_key, read_key, resolved, settings):
    m = uuid.uuid4().hex[:8]
    now = int(time.time() * 1000) - 60_000
    events = [
        {"messageId": f"f-{m}-0", "userId": f"mum-{m}", "anonymousId": f"tablet-{m}", "timestamp": iso(now)},
        {"messageId": f"f-{m}-1", "userId": f"kid-{m}", "anonymousId": f"tablet-{m}",
         "timestamp": iso(now + 1000)},
        {"messageId": f"f-{m}-2", "anonymousId": f"tablet-{m}", "timestamp": iso(now + 2000)},
    ]
    for event in events:
        assert post(collector + "/v1/identify", event, key=write_key)[0] == 200
    found = wait_resolved(resolved, {e["messageId"] for e in events})
    mum, kid, later = (found[f"f-{m}-{i}"]["oneid"] for i in range(3))
    assert mum != kid
    assert later == kid  # the shared tablet follows whoever logged in last
    status, profile = api(collector, "GET", f"/v1/identities/user_id/mum-{m}", read_key)
    assert status == 200 and profile["identifiers"]["user_id"] == [f"mum-{m}"]


def test_undecodable_bytes_become_dead_letters_with_the_original_bytes(settings, worker):
    garbage = f"not avro {uuid.uuid4().hex}".encode()
    producer = Producer({"bootstrap.servers": settings.broker})
    producer.produce(Topics.of(settings).raw, garbage, b"k")
    assert producer.flush(10) == 0
    reader = TopicReader(settings, Topics.of(settings).deadletter, "deadletter")
    try:
        letters = reader.until(lambda rs: any(r["original"] == garbage for r in rs), 30)
    finally:
        reader.close()
    [letter] = [r for r in letters if r["original"] == garbage]
    assert (letter["stage"], letter["reason"]) == ("resolve", "avro_decode")
    assert letter["source_topic"] == Topics.of(settings).raw and letter["offset"] >= 0
    listing = cli(settings, "deadletter", "list", "--limit", "1000")
    assert garbage[:24].decode() in listing


def test_an_undecodable_merge_record_is_dead_lettered_and_the_merges_stage_moves_on(settings, worker):
    garbage = f"not a merge {uuid.uuid4().hex}".encode()
    producer = Producer({"bootstrap.servers": settings.broker})
    producer.produce(Topics.of(settings).merges, garbage, b"k")
    assert producer.flush(10) == 0
    reader = TopicReader(settings, Topics.of(settings).deadletter, "deadletter")
    try:
        letters = reader.until(lambda rs: any(r["original"] == garbage for r in rs), 30)
    finally:
        reader.close()
    [letter] = [r for r in letters if r["original"] == garbage]
    assert (letter["stage"], letter["reason"]) == ("merge-profiles", "avro_decode")
    assert letter["source_topic"] == Topics.of(settings).merges
    wait_caught_up(settings, Topics.of(settings).merges, timeout=30)  # committed past it, not stuck


def test_a_duplicate_that_slipped_past_the_edge_is_resolved_once(settings, worker, resolved):
    registry = default_registry()
    m = uuid.uuid4().hex[:8]
    event = {"message_id": f"dup-{m}", "type": "track", "event": "Order Completed", "user_id": f"d-{m}",
             "timestamp": int(time.time() * 1000), "received_at": int(time.time() * 1000), "source": "web",
             "identifiers": [{"type": "user_id", "value": f"d-{m}"}]}
    later = {**event, "message_id": f"dup-{m}-after"}
    producer = Producer({"bootstrap.servers": settings.broker})
    for record in (event, event, later):  # an SDK retry racing two collectors: twice on raw
        producer.produce(Topics.of(settings).raw, registry.encode("event", record), f"user_id:d-{m}".encode())
    assert producer.flush(10) == 0
    wait_resolved(resolved, {f"dup-{m}-after"})
    assert [r["message_id"] for r in resolved.records].count(f"dup-{m}") == 1


def test_unmerge_and_delete_over_http_are_audited(collector, settings, write_key, read_key, admin_key,
                                                  resolved):
    m = uuid.uuid4().hex[:8]
    now = int(time.time() * 1000) - 60_000
    # a store clerk typed Ann's phone for Bob's purchase: Bob's email is wrongly merged into Ann
    phone = mobile()
    events = [{"messageId": f"u-{m}-0", "userId": f"ann-{m}", "traits": {"phone": phone},
               "timestamp": iso(now)}]
    events.append({"messageId": f"u-{m}-1", "anonymousId": f"pos-{m}",
                   "traits": {"phone": phone, "email": f"bob-{m}@163.com"}, "timestamp": iso(now + 1000)})
    for event in events:
        assert post(collector + "/v1/identify", event, key=write_key)[0] == 200
    found = wait_resolved(resolved, {e["messageId"] for e in events})
    ann = found[f"u-{m}-0"]["oneid"]
    status, body = api(collector, "GET", f"/v1/identities/email/bob-{m}@163.com", read_key)
    assert (status, body["oneid"]) == (200, ann)

    assert api(collector, "POST", f"/v1/profiles/{ann}/unmerge", read_key,
               {"type": "email", "value": f"bob-{m}@163.com"})[0] == 403
    status, split = api(collector, "POST", f"/v1/profiles/{ann}/unmerge", admin_key,
                        {"type": "email", "value": f"BOB-{m}@163.com"})
    assert status == 200 and split["new_oneid"] != ann
    status, bob = api(collector, "GET", f"/v1/identities/email/bob-{m}@163.com", read_key)
    assert (status, bob["oneid"]) == (200, split["new_oneid"])
    # the split is announced on the merges topic (the lake moves Bob's history) and not folded back
    merges = TopicReader(settings, Topics.of(settings).merges, "identity_merge")
    try:
        announced = merges.until(lambda rs: any(r["merged"] == split["new_oneid"] for r in rs), timeout=30)
    finally:
        merges.close()
    [unmerge] = [r for r in announced if r["merged"] == split["new_oneid"]]
    assert (unmerge["kind"], unmerge["survivor"]) == ("unmerge", ann)
    assert {"type": "email", "value": f"bob-{m}@163.com"} in unmerge["identifiers"]
    status, ann_now = api(collector, "GET", f"/v1/profiles/{ann}", read_key)
    assert "email" not in ann_now["identifiers"] and ann_now["identifiers"]["user_id"] == [f"ann-{m}"]

    assert api(collector, "DELETE", f"/v1/profiles/{split['new_oneid']}", read_key)[0] == 403
    status, deleted = api(collector, "DELETE", f"/v1/profiles/{split['new_oneid']}", admin_key)
    assert status == 200 and deleted["identifiers_removed"] >= 1
    assert api(collector, "GET", f"/v1/identities/email/bob-{m}@163.com", read_key)[0] == 404
    # an in-flight event carrying the deleted identifier does not bring the profile back
    late = {"messageId": f"u-{m}-2", "anonymousId": f"pos2-{m}", "traits": {"email": f"bob-{m}@163.com"},
            "timestamp": iso(now + 2000)}
    assert post(collector + "/v1/identify", late, key=write_key)[0] == 200
    time.sleep(2)
    assert api(collector, "GET", f"/v1/identities/email/bob-{m}@163.com", read_key)[0] == 404
    audit = [json.loads(line) for line in cli(settings, "identity", "audit", "--count", "50").splitlines()]
    assert {"unmerge", "delete"} <= {entry["action"] for entry in audit}
    assert all("bob" not in json.dumps(entry) for entry in audit)  # no raw PII in the audit
    reads = [json.loads(line) for line in cli(settings, "audit", "reads", "--count", "200").splitlines()]
    ann_reads = [r for r in reads if r["subject"] == ann]
    routes = {r["route"] for r in ann_reads}
    assert routes >= {"GET /v1/identities/{type}/{value}", "GET /v1/profiles/{oneid}"}
    assert all(r["actor"] == "api:analyst" and r["found"] for r in ann_reads)
    misses = [r for r in reads if r["subject"] == "type:email" and not r["found"]]
    assert misses  # the lookups after the deletion: audited by type, never by value
    assert all("bob" not in json.dumps(r) and "163.com" not in json.dumps(r) for r in reads)


def test_two_workers_in_one_group_resolve_conflicting_traffic_correctly(settings, tmp_path):
    """Two worker processes share the partitions of interleaved, conflicting synthetic traffic."""
    own = settings.__class__.from_env({}, **{**vars(settings), "topic_prefix": settings.topic_prefix + "-two",
                                             "app_id": settings.app_id + "-two",
                                             "redis_prefix": settings.redis_prefix + "two:"})
    create_topics(own)
    workers = [WorkerProcess(own, tmp_path / f"w{i}.log", free_port()).start() for i in range(2)]
    events, truth = generate(150, seed=11)
    registry = default_registry()
    producer = Producer({"bootstrap.servers": own.broker, "linger.ms": 5})
    try:
        time.sleep(3)  # both join the group before traffic starts, so both take partitions
        for event in events:  # keyed at random: one person's events land on both workers
            producer.produce(Topics.of(own).raw, registry.encode("event", event), uuid.uuid4().bytes)
        assert producer.flush(30) == 0
        # Every event ends resolved or, when it has no identifier the rules accept, dead-lettered.
        resolved_reader = TopicReader(own, Topics.of(own).resolved, "event")
        dead_reader = TopicReader(own, Topics.of(own).deadletter, "deadletter")

        def covered() -> set[str]:
            dead_ids = {registry.decode(d["original"])[1]["message_id"] for d in dead_reader.records}
            return {r["message_id"] for r in resolved_reader.records} | dead_ids

        try:
            deadline = time.monotonic() + 120
            while not set(truth) <= covered() and time.monotonic() < deadline:
                resolved_reader.until(lambda rs: False, 1)
                dead_reader.until(lambda d: False, 0.2)
            records, dead = resolved_reader.records, dead_reader.records
        finally:
            resolved_reader.close()
            dead_reader.close()
        assert covered() == set(truth)
        assert {d["reason"] for d in dead} <= {"unresolvable"}
        worked = {r["_partition"] for r in records}
        assert len(worked) == own.partitions  # every partition's events came through
        client = redis.Redis.from_url(own.redis_url)
        graph = factory.identity_graph(own, client)
        assert graph.check_consistency() == []
        final = graph.resolve_aliases({r["oneid"] for r in records})
        predicted = {r["message_id"]: final[r["oneid"]] for r in records}
        report = score(predicted, {k: v for k, v in truth.items() if k in predicted})
        assert report.precision >= 0.99 and report.recall >= 0.99, report
        for log in tmp_path.glob("w*.log"):
            assert "Traceback" not in log.read_text()
    finally:
        for w in workers:
            w.stop()
