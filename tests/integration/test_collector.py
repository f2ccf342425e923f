"""The collector on the real stack: keys, validation, gzip, dedup, SDKs, Avro on the raw topic."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.integration.conftest import cli, metric, post, raw_records


def now_iso(delta: timedelta = timedelta()) -> str:
    return (datetime.now(UTC) + delta).isoformat().replace("+00:00", "Z")


def test_unknown_missing_and_revoked_keys_get_401(collector, settings):
    event = {"userId": "u1", "event": "Signed Up"}
    assert post(collector + "/v1/track", event, key=None)[0] == 401
    assert post(collector + "/v1/track", event, key="tsk_nope_nope")[0] == 401
    key = cli(settings, "keys", "create", "--scope", "write", "--name", "temp").strip()
    assert post(collector + "/v1/track", event, key=key)[0] == 200
    cli(settings, "keys", "revoke", key)
    status, body = post(collector + "/v1/track", event, key=key)
    assert status == 401 and body["error"]["field"] == "Authorization"


def test_read_key_cannot_write(collector, read_key):
    assert post(collector + "/v1/track", {"userId": "u", "event": "x"}, key=read_key)[0] == 401


def test_track_lands_on_raw_topic_as_avro_with_clean_identifiers(collector, settings, write_key):
    marker = f"single-{uuid.uuid4().hex[:8]}"
    sent_at = datetime.now(UTC)
    message = {
        "messageId": marker, "anonymousId": "a-1", "event": "Order Completed",
        "properties": {"revenue": 42.5},
        "context": {"traits": {"email": "  Alice@Example.COM ", "phone": "139 1234 5678"}},
        # The client's clock runs 1 hour fast: the server corrects the event time.
        "originalTimestamp": (sent_at + timedelta(hours=1) - timedelta(seconds=10)).isoformat(),
        "sentAt": (sent_at + timedelta(hours=1)).isoformat(),
    }
    status, body = post(collector + "/v1/track", message, key=write_key, gzipped=True)
    assert (status, body["success"]) == (200, True), body
    [record] = raw_records(settings, marker)
    assert record["type"] == "track" and record["event"] == "Order Completed"
    ids = {(i["type"], i["value"]) for i in record["identifiers"]}
    assert ("email", "alice@example.com") in ids
    assert ("phone", "+8613912345678") in ids
    assert ("anonymous_id", "a-1") in ids
    skew_corrected = record["timestamp"] - int(sent_at.timestamp() * 1000)
    assert -15_000 < skew_corrected < 0, skew_corrected  # ~10 s before sending, not 1 h ahead
    assert json.loads(record["properties"]) == {"revenue": 42.5}
    assert record["source"] == "web"
    assert record["_key"] == b"email:alice@example.com"


@pytest.mark.parametrize(
    ("path", "body", "field", "reason"),
    [
        ("/v1/track", None, "body", "malformed_json"),
        ("/v1/track", {"event": "x"}, "userId", "missing_identity"),
        ("/v1/track", {"userId": "u"}, "event", None),
        ("/v1/track", {"userId": 5, "event": "x", "messageId": "m" * 101}, "messageId", None),
        ("/v1/track", {"userId": "u", "event": "x", "properties": [1]}, "properties", None),
        ("/v1/track", {"userId": "u", "event": "x", "timestamp": "yesterday"}, "timestamp", "bad_timestamp"),
        ("/v1/track", {"userId": "u", "event": "x", "timestamp": "2999-01-01T00:00:00Z"}, "timestamp",
         "timestamp_out_of_range"),
        ("/v1/track", {"userId": "u", "event": "x", "timestamp": "1999-01-01T00:00:00Z"}, "timestamp",
         "timestamp_out_of_range"),
        ("/v1/track", {"userId": "u", "event": "x", "properties": {"blob": "x" * 40_000}}, "body",
         "too_large"),
        ("/v1/alias", {"userId": "u"}, "previousId", None),
        ("/v1/group", {"userId": "u"}, "groupId", None),
    ],
)
def test_bad_input_gets_400_naming_the_field_and_is_counted(collector, write_key, path, body, field, reason):
    raw = b"{not json" if body is None else None
    status, answer = post(collector + path, body, key=write_key, raw=raw)
    assert status == 400, answer
    assert answer["error"]["field"] == field
    if reason:
        assert answer["error"]["reason"] == reason
    assert metric(collector, "touchstream_events_rejected_total", reason=answer["error"]["reason"]) >= 1


def test_batch_accepts_good_messages_and_reports_each_bad_one(collector, settings, write_key):
    marker = f"batch-{uuid.uuid4().hex[:8]}"
    batch = {"batch": [
        {"type": "track", "messageId": f"{marker}-0", "userId": "u1", "event": "A"},
        {"type": "track", "messageId": f"{marker}-1", "event": "no identity"},
        {"type": "page", "messageId": f"{marker}-2", "anonymousId": "x", "name": "Home"},
        {"type": "bogus", "messageId": f"{marker}-3", "userId": "u1"},
    ], "sentAt": now_iso()}
    status, body = post(collector + "/v1/batch", batch, key=write_key)
    assert status == 200
    assert body["accepted"] == 2
    assert [(r["index"], r["field"]) for r in body["rejected"]] == [(1, "userId"), (3, "type")]
    assert sorted(r["message_id"] for r in raw_records(settings, marker)) == [f"{marker}-0", f"{marker}-2"]


def test_batch_limits(collector, write_key):
    too_many = {"batch": [{"type": "track", "userId": "u", "event": "e"}] * 2501}
    status, body = post(collector + "/v1/batch", too_many, key=write_key)
    assert status == 400 and body["error"]["field"] == "batch"
    status, body = post(collector + "/v1/batch", {"batch": "nope"}, key=write_key)
    assert status == 400 and body["error"]["field"] == "batch"
    bomb = {"batch": [{"type": "track", "userId": "u", "event": "e", "properties": {"x": "y" * 30_000}}] * 20}
    status, body = post(collector + "/v1/batch", bomb, key=write_key, gzipped=True)
    assert status == 400 and body["error"]["reason"] == "too_large"


def test_invalid_identifiers_are_kept_but_not_used(collector, settings, write_key):
    marker = f"invalid-{uuid.uuid4().hex[:8]}"
    message = {"messageId": marker, "userId": "u-9", "traits": {"email": "not-an-email", "phone": "12"}}
    assert post(collector + "/v1/identify", message, key=write_key)[0] == 200
    [record] = raw_records(settings, marker)
    assert {i["type"] for i in record["identifiers"]} == {"user_id"}
    assert {i["type"] for i in record["invalid_identifiers"]} == {"email", "phone"}
    assert json.loads(record["traits"])["email"] == "not-an-email"


def test_segment_sdk_10000_events_with_retries_yield_exactly_10000(collector, settings, write_key):
    from segment.analytics import Client

    marker = f"sdk-{uuid.uuid4().hex[:8]}"
    errors = []
    client = Client(write_key=write_key, host=collector, on_error=lambda e, b: errors.append(e),
                    upload_size=250, max_queue_size=20_000, gzip=True)
    for i in range(10_000):
        client.track(user_id=f"user-{i % 700}", event="Product Viewed", properties={"i": i},
                     message_id=f"{marker}-{i}")
    # SDK retries resend messages with the same messageId: 2,000 of them again.
    for i in range(0, 10_000, 5):
        client.track(user_id=f"user-{i % 700}", event="Product Viewed", properties={"i": i},
                     message_id=f"{marker}-{i}")
    client.flush()
    client.join()
    assert errors == []
    records = raw_records(settings, marker, timeout=60)
    ids = [r["message_id"] for r in records]
    assert len(set(ids)) == 10_000
    assert len(ids) == 10_000


def test_rudderstack_sdk_works_unmodified(collector, settings, write_key):
    import rudderstack.analytics as rudder

    marker = f"rudder-{uuid.uuid4().hex[:8]}"
    client = rudder.Client(write_key=write_key, host=collector, gzip=True)
    client.identify(user_id="r-1", traits={"email": "r1@example.com"}, message_id=f"{marker}-0")
    client.page(anonymous_id="anon-r", name="Pricing", properties={"path": "/pricing"},
                message_id=f"{marker}-1")
    client.flush()
    client.join()
    records = sorted(raw_records(settings, marker), key=lambda r: r["message_id"])
    assert [r["type"] for r in records] == ["identify", "page"]


def test_openapi_is_served_and_documents_every_route(collector):
    spec = json.loads(urllib.request.urlopen(collector + "/openapi.json", timeout=10).read())
    from aiohttp import web

    from apps.server import create_app
    from touchstream.settings import Settings

    app: web.Application = create_app(Settings.from_env({}, http_ops_port=0))  # every route on one port
    served = {r.resource.canonical.replace("{type:" + "|".join(
        ("identify", "track", "page", "screen", "group", "alias")) + "}", "{type}")
        for r in app.router.routes() if r.method != "HEAD"}
    assert served == set(spec["paths"])
