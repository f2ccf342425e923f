"""Subject access on the real Redis: every identifier, trait, trigger and lake row of the person,
under every OneID they were ever stamped with, and nobody else's; over the CLI and the API."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace

import redis

from apps import factory
from schemas.testing import event_record
from tests.integration.conftest import api, cli
from tests.unit.analytics.lakes import merge, write_lake
from tests.unit.profiles.factory import identify, numbered, track


def _ev(message_id: str, ts: int, *ids: tuple[str, str]) -> dict:
    return {"message_id": message_id, "timestamp": ts, "received_at": ts,
            "identifiers": [{"type": t, "value": v} for t, v in ids]}


def test_identity_export_gathers_the_person_from_every_store(settings, tmp_path):
    m = uuid.uuid4().hex[:8]
    own = replace(settings, redis_prefix=f"{settings.redis_prefix}sar{m}:", lake_path=str(tmp_path / "lake"))
    client = redis.Redis.from_url(own.redis_url)
    graph, store = factory.identity_graph(own, client), factory.profile_store(own, client)
    now = int(time.time() * 1000) - 60_000
    email, phone = f"ann-{m}@example.cn", "+8613900001111"
    first = graph.resolve_batch([_ev("m1", now, ("email", email)),
                                 _ev("m2", now + 1, ("anonymous_id", f"a-{m}")),
                                 _ev("m4", now + 3, ("email", f"bob-{m}@example.cn"))])
    linked = graph.resolve_batch([_ev("m3", now + 2, ("email", email), ("anonymous_id", f"a-{m}"),
                                      ("phone", phone))])
    [joined] = linked.merges  # the anonymous visit's profile was merged into Ann's (or hers into it)
    ann, alias, bob = joined["survivor"], joined["merged"], first.oneids[2]
    assert {ann, alias} == set(first.oneids[:2]) and graph.resolve_alias(alias) == ann
    store.apply_batch(0, numbered([identify({"name": "安娜", "marketing_consent": True}, now, ann),
                                   track("Order Completed", now + 5, ann,
                                         properties={"revenue": 42.0, "order_id": "o-1"})]), now + 10)
    write_lake(tmp_path / "lake", [
        event_record("page", now + 1, message_id="m2", oneid=alias, anonymous_id=f"a-{m}"),
        event_record("track", now + 5, message_id="m5", oneid=ann, event="Order Completed"),
        event_record("track", now + 6, message_id="m6", oneid=bob, event="Order Completed"),
    ], merges=[merge(ann, alias, now + 2)])

    out = tmp_path / "ann.json"
    cli(own, "identity", "export", alias, "--out", str(out))  # any of her OneIDs finds her
    document = json.loads(out.read_text(encoding="utf-8"))
    assert (document["oneid"], document["requested"]) == (ann, alias)
    assert sorted(document["oneids"]) == sorted([ann, alias])
    assert document["identifiers"] == {"anonymous_id": [f"a-{m}"], "email": [email], "phone": [phone]}
    assert document["profile"]["traits"]["name"] == "安娜"
    assert document["profile"]["consent"]["marketing"] is True
    assert document["profile"]["aggregates"]["orders_90d"] == 1
    assert [e["message_id"] for e in document["lake"]["events"]] == ["m2", "m5"]  # not Bob's m6
    assert "bob" not in out.read_text(encoding="utf-8")


def test_the_api_export_is_admin_only_and_audited(collector, settings, worker, read_key, write_key):
    from tests.integration.conftest import iso, post

    admin_key = cli(settings, "keys", "create", "--scope", "admin", "--name", "dpo").strip()
    m = uuid.uuid4().hex[:8]
    event = {"messageId": f"sar-{m}", "userId": f"u-{m}", "traits": {"email": f"sar-{m}@example.cn"},
             "timestamp": iso(int(time.time() * 1000))}
    assert post(collector + "/v1/identify", event, key=write_key)[0] == 200
    graph = factory.identity_graph(settings, redis.Redis.from_url(settings.redis_url))
    deadline = time.monotonic() + 60
    while (oneid := graph.lookup("user_id", f"u-{m}")) is None:
        assert time.monotonic() < deadline, "the worker never resolved the event"
        time.sleep(0.2)
    assert api(collector, "GET", f"/v1/profiles/{oneid}/export", read_key)[0] == 403
    status, document = api(collector, "GET", f"/v1/profiles/{oneid}/export", admin_key)
    assert status == 200 and document["identifiers"]["email"] == [f"sar-{m}@example.cn"]
    assert api(collector, "GET", "/v1/profiles/o_nobody0000000000/export", admin_key)[0] == 404
    reads = [json.loads(line) for line in cli(settings, "audit", "reads", "--count", "50").splitlines()]
    assert any(r["subject"] == oneid and r["route"] == "GET /v1/profiles/{oneid}/export" for r in reads)
