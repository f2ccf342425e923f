"""connectors.validation: Segment messages in, Event records (the shared contract) out."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from connectors.jsonsafe import BadNumber
from connectors.validation import REASONS, TYPES, Limits, message_size, validate_batch, validate_message
from touchstream.errors import ConfigError, ValidationError
from touchstream.settings import Settings

RECEIVED = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
RECEIVED_MS = int(RECEIVED.timestamp() * 1000)
LIMITS = Limits()
RECORD_KEYS = {
    "message_id", "type", "event", "name", "anonymous_id", "user_id", "previous_id", "group_id",
    "timestamp", "original_timestamp", "sent_at", "received_at", "source", "identifiers",
    "invalid_identifiers", "properties", "traits", "context", "integrations", "trusted", "oneid",
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


# --- values no record can carry, and caps (issue 10) ----------------------------------------------


def nested(depth: int) -> dict:
    """An object ``depth`` levels deep ({"a": {"a": ... 1}})."""
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value  # type: ignore[return-value]


@pytest.mark.parametrize(("properties", "field"), [
    ({"revenue": float("nan")}, "properties.revenue"),
    ({"revenue": float("inf")}, "properties.revenue"),
    ({"revenue": -float("inf")}, "properties.revenue"),
    ({"revenue": BadNumber("1e999")}, "properties.revenue"),
    ({"n": 2**63}, "properties.n"),
    ({"n": -(2**63) - 1}, "properties.n"),
    ({"items": [1, {"price": 10**400}]}, "properties.items[1].price"),
])
def test_numbers_a_record_cannot_carry_reject_the_message_naming_it(properties: dict, field: str) -> None:
    message = {"userId": "u", "event": "E", "properties": properties}
    assert rejection(message, "track") == (field, "bad_number")


def test_64_bit_integers_and_finite_floats_are_kept_exactly() -> None:
    props = {"max": 2**63 - 1, "min": -(2**63), "tiny": 5e-324, "big": 1.7976931348623157e308}
    record = validate({"userId": "u", "event": "E", "properties": props}, "track")
    assert json.loads(record["properties"]) == props


@pytest.mark.parametrize(("message", "field"), [
    ({"userId": "u", "event": "E", "properties": {"name": "\ud83d"}}, "properties.name"),
    ({"userId": "u", "event": "E", "properties": {"\udfff": 1}}, "properties.\\udfff"),
    ({"userId": "u", "event": "E", "context": {"page": {"title": ["ok", "x\ud800"]}}},
     "context.page.title[1]"),
    ({"userId": "u", "event": "\ud83d"}, "event"),
    ({"userId": "\ud800", "event": "E"}, "userId"),
    ({"anonymousId": "a", "event": "E", "messageId": "m\udc00"}, "messageId"),
    ({"userId": "u", "traits": {"email": "\ud800@example.com"}}, "traits.email"),
])
def test_lone_surrogates_reject_the_message_naming_the_field(message: dict, field: str) -> None:
    type_ = "identify" if "traits" in message else "track"
    assert rejection(message, type_, raw_size=100) == (field, "bad_unicode")


def test_a_whole_emoji_is_fine() -> None:
    record = validate({"userId": "u", "event": "E 😀", "properties": {"😀": "😀"}}, "track")
    assert record["event"] == "E 😀" and json.loads(record["properties"]) == {"😀": "😀"}


def test_depth_at_most_max_depth_levels() -> None:
    # the message is level 1, so properties may hold 31 levels of objects (levels 2 to 32), not 32
    assert validate({"userId": "u", "event": "E", "properties": nested(31)}, "track")
    field, reason = rejection({"userId": "u", "event": "E", "properties": nested(32)}, "track")
    assert reason == "too_deep" and field.startswith("properties.a.a")
    deep_list: object = []
    for _ in range(500):
        deep_list = [deep_list]
    assert rejection({"userId": "u", "event": "E", "properties": {"x": deep_list}}, "track")[1] == "too_deep"
    shallow = Limits(max_depth=3)
    with pytest.raises(ValidationError) as caught:
        validate_message({"userId": "u", "event": "E", "properties": {"a": {"b": {"c": 1}}}}, type_="track",
                         received_at_ms=RECEIVED_MS, source="web", limits=shallow)
    assert (caught.value.field, caught.value.reason) == ("properties.a.b", "too_deep")


def test_trait_count_cap_counts_an_identifys_merged_traits() -> None:
    limits = Limits(max_traits_per_event=3)
    ok = {"userId": "u", "traits": {"a": 1, "b": 2}, "context": {"traits": {"b": 3, "c": 4}}}
    assert validate_message(ok, type_="identify", received_at_ms=RECEIVED_MS, source="web", limits=limits)
    over = {"userId": "u", "traits": {"a": 1, "b": 2}, "context": {"traits": {"c": 3, "d": 4}}}
    with pytest.raises(ValidationError) as caught:
        validate_message(over, type_="identify", received_at_ms=RECEIVED_MS, source="web", limits=limits)
    assert (caught.value.field, caught.value.reason) == ("traits", "too_many_traits")
    # a track's context.traits are not the record's traits: not counted
    track = {"userId": "u", "event": "E", "context": {"traits": {f"t{i}": i for i in range(10)}}}
    assert validate_message(track, type_="track", received_at_ms=RECEIVED_MS, source="web", limits=limits)


def test_trait_name_and_value_length_caps() -> None:
    limits = Limits(max_trait_key_chars=5, max_trait_value_chars=30)

    def check(traits: dict) -> tuple[str, str] | None:
        try:
            validate_message({"userId": "u", "traits": traits}, type_="identify", received_at_ms=RECEIVED_MS,
                             source="web", limits=limits)
        except ValidationError as exc:
            return exc.field, exc.reason
        return None

    assert check({"abcde": "x" * 28}) is None  # 28 chars + 2 quotes = 30
    assert check({"abcdef": 1}) == ("traits.abcdef", "too_long")
    assert check({"a": "x" * 29}) == ("traits.a", "too_long")
    assert check({"a": "é" * 28}) is None  # characters, not bytes
    assert check({"a": '"' * 14}) is None  # 14 escaped quotes and 2 quotes: 30 chars
    assert check({"a": '"' * 15}) == ("traits.a", "too_long")
    assert check({"a": list(range(20))}) == ("traits.a", "too_long")
    assert check({"a": 123456789, "b": True, "c": None, "d": 1.5}) is None


def test_identifier_cap_names_external_ids() -> None:
    external = [{"id": f"crm-{i}", "type": "crm_id", "collection": "users", "encoding": "none"}
                for i in range(19)]
    assert validate({"userId": "u", "event": "E", "context": {"externalIds": external}}, "track")
    over = [*external, {"id": "not valid email", "type": "email", "collection": "users", "encoding": "none"},
            {"id": "x", "type": "crm_id", "collection": "users", "encoding": "none"}]
    assert rejection({"userId": "u", "event": "E", "context": {"externalIds": over}}, "track") == (
        "context.externalIds", "too_many_identifiers")
    # more entries than the cap are refused before any is normalised, even repeated ones
    repeated = [{"id": "+8613912345678", "type": "phone", "collection": "users", "encoding": "none"}] * 21
    assert rejection({"userId": "u", "event": "E", "context": {"externalIds": repeated}}, "track") == (
        "context.externalIds", "too_many_identifiers")


def test_dict_subclasses_are_scanned_by_their_values() -> None:
    from collections import OrderedDict

    props = OrderedDict(revenue=float("nan"))
    assert rejection({"userId": "u", "event": "E", "properties": props}, "track") == (
        "properties.revenue", "bad_number")


def test_limits_from_settings_reads_the_caps() -> None:
    settings = Settings.from_env({}, max_traits_per_event=7, max_trait_key_chars=8, max_trait_value_chars=9,
                                 max_identifiers_per_event=10)
    limits = Limits.from_settings(settings)
    assert (limits.max_traits_per_event, limits.max_trait_key_chars, limits.max_trait_value_chars,
            limits.max_identifiers_per_event, limits.max_depth) == (7, 8, 9, 10, 32)


def test_in_a_batch_bad_values_reject_only_their_message() -> None:
    body = {"batch": [
        {"type": "track", "userId": "u", "event": "Good", "messageId": "m0"},
        {"type": "page", "anonymousId": "a", "name": "\ud83d"},
        {"type": "track", "userId": "u", "event": "E", "properties": {"revenue": BadNumber("NaN")}},
        {"type": "track", "userId": "u", "event": "E", "properties": nested(40)},
        {"type": "track", "userId": "u", "event": "Good", "messageId": "m4"},
    ]}
    records, outcomes = batch_validate(body)
    assert [o.accepted for o in outcomes] == [True, False, False, False, True]
    assert [(o.field, o.reason) for o in outcomes[1:4]] == [
        ("name", "bad_unicode"), ("properties.revenue", "bad_number"), (outcomes[3].field, "too_deep")]
    assert [r["message_id"] for r in records if r] == ["m0", "m4"]


def test_a_bad_value_in_the_batch_context_rejects_each_message_not_the_request() -> None:
    body = {"batch": [{"type": "track", "userId": "u", "event": "E"}] * 2,
            "context": {"ip": BadNumber("Infinity")}}
    _, outcomes = batch_validate(body)
    assert [(o.field, o.reason) for o in outcomes] == [("context.ip", "bad_number")] * 2


def test_message_size_of_an_unwritable_value_is_a_validation_error() -> None:
    with pytest.raises(ValidationError) as caught:
        message_size({"a": {"b": "\ud800"}})
    assert (caught.value.field, caught.value.reason) == ("a.b", "bad_unicode")
    with pytest.raises(ValidationError) as caught:
        message_size({"a": 2**64})
    assert caught.value.reason == "bad_number"
