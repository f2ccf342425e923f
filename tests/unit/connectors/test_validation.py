"""connectors.validation: Segment messages in, Event records (the shared contract) out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from connectors.validation import REASONS, TYPES, Limits, message_size, validate_batch, validate_message
from touchstream.errors import ConfigError, ValidationError
from touchstream.settings import Settings

RECEIVED = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
RECEIVED_MS = int(RECEIVED.timestamp() * 1000)
LIMITS = Limits()
RECORD_KEYS = {
    "message_id", "type", "event", "name", "anonymous_id", "user_id", "previous_id", "group_id",
    "timestamp", "original_timestamp", "sent_at", "received_at", "source", "identifiers",
    "invalid_identifiers", "properties", "traits", "context", "integrations", "oneid",
}


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def validate(message: object, type_: str | None = None, **kw: object) -> dict:
    return validate_message(
        message, type_=type_, received_at_ms=RECEIVED_MS, source="web", limits=LIMITS, **kw
    )


def rejection(message: object, type_: str | None = None, **kw: object) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        validate(message, type_, **kw)
    assert caught.value.reason in REASONS
    return caught.value.field, caught.value.reason


def test_track_record_has_exactly_the_contract_keys_and_values() -> None:
    when = RECEIVED - timedelta(minutes=5)
    record = validate({
        "type": "track", "event": "Order Completed", "userId": "u-1", "anonymousId": "a-1",
        "messageId": "m-1", "timestamp": iso(when), "properties": {"revenue": 12.5, "城市": "上海"},
        "context": {"ip": "1.2.3.4"}, "integrations": {"All": True},
    })
    assert set(record) == RECORD_KEYS
    assert record["message_id"] == "m-1"
    assert record["type"] == "track"
    assert record["event"] == "Order Completed"
    assert record["user_id"] == "u-1" and record["anonymous_id"] == "a-1"
    assert record["timestamp"] == ms(when)
    assert record["original_timestamp"] is None and record["sent_at"] is None
    assert record["received_at"] == RECEIVED_MS
    assert record["source"] == "web"
    assert record["properties"] == '{"revenue":12.5,"城市":"上海"}'  # compact, not ASCII-escaped
    assert json.loads(record["context"]) == {"ip": "1.2.3.4"}
    assert json.loads(record["integrations"]) == {"All": True}
    assert record["traits"] == "{}"
    assert record["oneid"] is None
    assert record["identifiers"] == [
        {"type": "user_id", "value": "u-1"}, {"type": "anonymous_id", "value": "a-1"}]
    assert record["invalid_identifiers"] == []
    assert record["name"] is None and record["group_id"] is None and record["previous_id"] is None


def test_endpoint_type_wins_over_the_body() -> None:
    record = validate({"userId": "u", "event": "E", "type": "identify"}, "track")
    assert record["type"] == "track" and record["event"] == "E"


def test_message_id_is_generated_when_absent_and_unique() -> None:
    first = validate({"userId": "u"}, "identify")["message_id"]
    second = validate({"userId": "u", "messageId": ""}, "identify")["message_id"]
    assert len(first) == 32 and int(first, 16) >= 0
    assert first != second


def test_message_id_limits() -> None:
    assert validate({"userId": "u", "messageId": "m" * 100}, "identify")["message_id"] == "m" * 100
    assert rejection({"userId": "u", "messageId": "m" * 101}, "identify") == ("messageId", "too_long")
    assert rejection({"userId": "u", "messageId": {"a": 1}}, "identify") == ("messageId", "not_a_string")
    assert validate({"userId": "u", "messageId": 7}, "identify")["message_id"] == "7"


@pytest.mark.parametrize("body", [[], "x", 1, None])
def test_body_must_be_an_object(body: object) -> None:
    assert rejection(body, "track") == ("body", "not_an_object")


def test_too_large_message() -> None:
    big = {"userId": "u", "event": "E", "properties": {"blob": "x" * (32 * 1024)}}
    assert rejection(big, "track") == ("body", "too_large")
    assert rejection({"userId": "u", "event": "E"}, "track", raw_size=32 * 1024 + 1) == ("body", "too_large")
    assert validate({"userId": "u", "event": "E"}, "track", raw_size=32 * 1024)["event"] == "E"


@pytest.mark.parametrize(
    "ids", [{}, {"userId": ""}, {"anonymousId": "  "}, {"userId": None, "anonymousId": ""}]
)
def test_an_identity_is_required(ids: dict) -> None:
    assert rejection({"event": "E", **ids}, "track") == ("userId", "missing_identity")


def test_numeric_ids_are_stringified_and_other_types_refused() -> None:
    record = validate({"userId": 123, "anonymousId": 4.0, "event": "E"}, "track")
    assert record["user_id"] == "123" and record["anonymous_id"] == "4"
    assert rejection({"userId": True, "event": "E"}, "track") == ("userId", "not_a_string")
    assert rejection({"anonymousId": ["a"], "event": "E"}, "track") == ("anonymousId", "not_a_string")
    assert rejection({"userId": "u" * 300, "event": "E"}, "track") == ("userId", "too_long")


def test_batch_items_need_a_known_type() -> None:
    assert rejection({"userId": "u"}) == ("type", "missing")
    assert rejection({"userId": "u", "type": "Track"}) == ("type", "unknown_type")
    assert rejection({"userId": "u", "type": 3}) == ("type", "not_a_string")
    for type_ in TYPES:
        assert type_ in {"identify", "track", "page", "screen", "group", "alias"}


@pytest.mark.parametrize(("message", "type_", "expected"), [
    ({"userId": "u"}, "track", ("event", "missing")),
    ({"userId": "u", "event": ""}, "track", ("event", "missing")),
    ({"userId": "u", "event": "  "}, "track", ("event", "missing")),
    ({"userId": "u", "event": 5}, "track", ("event", "not_a_string")),
    ({"userId": "u"}, "group", ("groupId", "missing")),
    ({"userId": "u", "groupId": ""}, "group", ("groupId", "missing")),
    ({"userId": "u"}, "alias", ("previousId", "missing")),
    ({"anonymousId": "a", "previousId": "p"}, "alias", ("userId", "missing")),
    ({"userId": "u", "name": {"x": 1}}, "page", ("name", "not_a_string")),
])
def test_type_specific_requirements(message: dict, type_: str, expected: tuple[str, str]) -> None:
    assert rejection(message, type_) == expected


def test_type_specific_fields_land_in_the_record() -> None:
    assert validate({"userId": "u", "groupId": 9}, "group")["group_id"] == "9"
    alias = validate({"userId": "u", "previousId": "anon-1"}, "alias")
    assert alias["previous_id"] == "anon-1" and alias["user_id"] == "u"
    page = validate({"anonymousId": "a", "name": "Pricing", "properties": {"path": "/pricing"}}, "page")
    assert page["name"] == "Pricing" and page["event"] is None
    assert validate({"anonymousId": "a", "name": "Home"}, "screen")["name"] == "Home"


@pytest.mark.parametrize("key", ["properties", "traits", "context", "integrations"])
def test_object_fields_must_be_objects(key: str) -> None:
    assert rejection({"userId": "u", "event": "E", key: [1]}, "track") == (key, "not_an_object")
    assert rejection({"userId": "u", "event": "E", key: "x"}, "track") == (key, "not_an_object")
    assert validate({"userId": "u", "event": "E", key: None}, "track")[key] == "{}"


def test_identify_traits_top_level_and_context_traits() -> None:
    record = validate({
        "userId": "u", "traits": {"email": "Me@Example.com", "plan": "pro"},
        "context": {"traits": {"phone": "139 1234 5678", "plan": "free"}},
    }, "identify")
    assert json.loads(record["traits"]) == {
        "phone": "139 1234 5678", "email": "Me@Example.com", "plan": "pro"}
    assert {"type": "email", "value": "me@example.com"} in record["identifiers"]
    assert {"type": "phone", "value": "+8613912345678"} in record["identifiers"]
    only_context = validate({"userId": "u", "context": {"traits": {"plan": "free"}}}, "identify")
    assert json.loads(only_context["traits"]) == {"plan": "free"}


def test_invalid_identifiers_are_kept_but_do_not_reject() -> None:
    record = validate({"userId": "u", "traits": {"email": "not-an-email", "phone": "123"}}, "identify")
    assert record["identifiers"] == [{"type": "user_id", "value": "u"}]
    assert {(i["type"], i["reason"]) for i in record["invalid_identifiers"]} == {
        ("email", "email_syntax"), ("phone", "phone_invalid")}


def test_custom_types_and_region_come_from_limits() -> None:
    limits = Limits(custom_types=("member_no",), default_region="US")
    record = validate_message({"userId": "u", "traits": {"member_no": "M1", "phone": "(650) 253-0000"}},
                              type_="identify", received_at_ms=RECEIVED_MS, source="s", limits=limits)
    assert {"type": "member_no", "value": "M1"} in record["identifiers"]
    assert {"type": "phone", "value": "+16502530000"} in record["identifiers"]


def test_explicit_timestamp_is_used_as_is_even_with_sent_at() -> None:
    when = RECEIVED - timedelta(days=30)
    record = validate({"userId": "u", "event": "E", "timestamp": iso(when),
                       "sentAt": iso(RECEIVED + timedelta(hours=1))}, "track")
    assert record["timestamp"] == ms(when)
    assert record["sent_at"] == ms(RECEIVED + timedelta(hours=1))


def test_clock_skew_is_corrected_from_original_timestamp_and_sent_at() -> None:
    # The device clock is 10 minutes fast; the event happened 3 s before it was sent.
    device_sent = RECEIVED + timedelta(minutes=10)
    device_event = device_sent - timedelta(seconds=3)
    record = validate({"userId": "u", "event": "E", "originalTimestamp": iso(device_event),
                       "sentAt": iso(device_sent)}, "track")
    assert record["timestamp"] == RECEIVED_MS - 3000
    assert record["original_timestamp"] == ms(device_event)
    assert record["sent_at"] == ms(device_sent)


def test_original_timestamp_without_sent_at_and_no_times_at_all() -> None:
    when = RECEIVED - timedelta(hours=2)
    record = validate({"userId": "u", "event": "E", "originalTimestamp": iso(when)}, "track")
    assert record["timestamp"] == ms(when)
    record = validate({"userId": "u", "event": "E"}, "track")
    assert record["timestamp"] == RECEIVED_MS
    assert record["original_timestamp"] is None and record["sent_at"] is None


@pytest.mark.parametrize(("text", "expected"), [
    ("2025-06-01T10:00:00+08:00", datetime(2025, 6, 1, 2, tzinfo=UTC)),
    ("2025-06-01T10:00:00", datetime(2025, 6, 1, 10, tzinfo=UTC)),  # naive = UTC
    ("2025-06-01T10:00:00.123456789Z", datetime(2025, 6, 1, 10, 0, 0, 123000, tzinfo=UTC)),
    ("2025-06-01 10:00:00Z", datetime(2025, 6, 1, 10, tzinfo=UTC)),
])
def test_timestamp_formats(text: str, expected: datetime) -> None:
    assert validate({"userId": "u", "event": "E", "timestamp": text}, "track")["timestamp"] == ms(expected)


@pytest.mark.parametrize("field", ["timestamp", "originalTimestamp", "sentAt"])
@pytest.mark.parametrize("value", ["yesterday", "2025-13-01T00:00:00Z", 1717243200000, {"t": 1}])
def test_bad_timestamps_name_the_field(field: str, value: object) -> None:
    assert rejection({"userId": "u", "event": "E", field: value}, "track") == (field, "bad_timestamp")


def test_timestamp_range() -> None:
    limits = LIMITS
    too_old = RECEIVED - timedelta(seconds=limits.max_age_s + 1)
    too_new = RECEIVED + timedelta(seconds=limits.max_future_s + 1)
    assert rejection({"userId": "u", "event": "E", "timestamp": iso(too_old)}, "track") == (
        "timestamp", "timestamp_out_of_range")
    assert rejection({"userId": "u", "event": "E", "timestamp": iso(too_new)}, "track") == (
        "timestamp", "timestamp_out_of_range")
    assert rejection({"userId": "u", "event": "E", "originalTimestamp": iso(too_old)}, "track") == (
        "originalTimestamp", "timestamp_out_of_range")
    edge = RECEIVED - timedelta(seconds=limits.max_age_s)
    assert validate({"userId": "u", "event": "E", "timestamp": iso(edge)}, "track")["timestamp"] == ms(edge)


def test_limits_from_settings() -> None:
    settings = Settings.from_env({}, default_phone_region="us", max_event_age_s=60, max_event_future_s=5)
    limits = Limits.from_settings(settings)
    assert limits.default_region == "US" and limits.max_age_s == 60 and limits.max_future_s == 5
    assert limits.max_message_bytes == 32 * 1024 and limits.max_batch_messages == 2500
    assert Limits.from_settings(settings, custom_types=("x_id",)).custom_types == ("x_id",)


@pytest.mark.parametrize("bad", ["Bad", "user_id", "1abc", "a" * 41])
def test_limits_refuse_bad_custom_types(bad: str) -> None:
    with pytest.raises(ConfigError):
        Limits(custom_types=(bad,))


def test_reasons_are_unique_label_safe_strings() -> None:
    assert len(REASONS) == len(set(REASONS))
    assert all(r.replace("_", "").isalpha() and r.islower() for r in REASONS)


# --- batches -------------------------------------------------------------------------------------


def batch_validate(body: object, raw_size: int | None = None, limits: Limits = LIMITS) -> tuple[list, list]:
    return validate_batch(body, received_at_ms=RECEIVED_MS, source="sdk", limits=limits, raw_size=raw_size)


def test_batch_good_and_bad_messages_index_by_index() -> None:
    body = {"batch": [
        {"type": "track", "userId": "u", "event": "A", "messageId": "m0"},
        {"type": "track", "userId": "u"},
        "not an object",
        {"type": "identify", "anonymousId": "a", "messageId": "m3"},
        {"type": "nope", "userId": "u"},
    ]}
    records, outcomes = batch_validate(body)
    assert [o.index for o in outcomes] == [0, 1, 2, 3, 4]
    assert [o.accepted for o in outcomes] == [True, False, False, True, False]
    assert [(o.field, o.reason) for o in outcomes if not o.accepted] == [
        ("event", "missing"), ("body", "not_an_object"), ("type", "unknown_type")]
    assert records[0]["message_id"] == "m0" and records[3]["message_id"] == "m3"
    assert records[1] is None and records[2] is None and records[4] is None
    assert all(o.message for o in outcomes if not o.accepted)


def test_batch_context_and_sent_at_are_merged_message_values_win() -> None:
    device_sent = RECEIVED + timedelta(minutes=10)
    body = {
        "batch": [
            {"type": "track", "userId": "u", "event": "A",
             "originalTimestamp": iso(device_sent - timedelta(seconds=5)),
             "context": {"library": {"name": "mine"}}},
            {"type": "track", "userId": "u", "event": "B", "sentAt": iso(RECEIVED)},
        ],
        "context": {"library": {"name": "batch"}, "ip": "9.9.9.9"},
        "integrations": {"All": False},
        "sentAt": iso(device_sent),
    }
    records, outcomes = batch_validate(body)
    assert all(o.accepted for o in outcomes)
    first, second = records
    assert json.loads(first["context"]) == {"library": {"name": "mine"}, "ip": "9.9.9.9"}
    assert first["timestamp"] == RECEIVED_MS - 5000  # skew corrected with the batch's sentAt
    assert first["sent_at"] == ms(device_sent)
    assert second["sent_at"] == RECEIVED_MS
    assert json.loads(second["context"]) == {"library": {"name": "batch"}, "ip": "9.9.9.9"}
    assert json.loads(second["integrations"]) == {"All": False}
    assert "context" not in body["batch"][1]  # the caller's body is not modified


@pytest.mark.parametrize(("body", "reason"), [
    ([], "not_an_object"),
    ("x", "not_an_object"),
    ({}, "missing"),
    ({"batch": {"a": 1}}, "not_a_list"),
])
def test_bad_envelopes_raise_naming_batch(body: object, reason: str) -> None:
    with pytest.raises(ValidationError) as caught:
        batch_validate(body)
    assert (caught.value.field, caught.value.reason) == ("batch", reason)


def test_batch_context_must_be_an_object() -> None:
    with pytest.raises(ValidationError) as caught:
        batch_validate({"batch": [], "context": "x"})
    assert (caught.value.field, caught.value.reason) == ("context", "not_an_object")


def test_batch_size_and_count_limits() -> None:
    one = {"type": "track", "userId": "u", "event": "E"}
    with pytest.raises(ValidationError) as caught:
        batch_validate({"batch": [one] * 2501})
    assert (caught.value.field, caught.value.reason) == ("batch", "too_many")
    records, _ = batch_validate({"batch": [one] * 2500})
    assert len(records) == 2500
    with pytest.raises(ValidationError) as caught:
        batch_validate({"batch": [one]}, raw_size=500 * 1024 + 1)
    assert (caught.value.field, caught.value.reason) == ("batch", "too_large")
    with pytest.raises(ValidationError) as caught:
        batch_validate({"batch": [{**one, "properties": {"x": "y" * 501 * 1024}}]})
    assert caught.value.reason == "too_large"


def test_an_oversized_item_rejects_only_itself() -> None:
    big = {"type": "track", "userId": "u", "event": "E", "properties": {"blob": "x" * 33 * 1024}}
    small = {"type": "track", "userId": "u", "event": "E"}
    body = {"batch": [small, big, small]}
    _, outcomes = batch_validate(body, raw_size=message_size(body))
    assert [o.accepted for o in outcomes] == [True, False, True]
    assert (outcomes[1].field, outcomes[1].reason) == ("body", "too_large")


def test_empty_batch() -> None:
    assert batch_validate({"batch": []}) == ([], [])


def test_message_size_counts_utf8_bytes() -> None:
    assert message_size({"a": "é"}) == len('{"a":"é"}'.encode())
    assert message_size({"a": "b"}) == 9
