"""identity.identifiers: one normaliser for the edge and for lookups."""

from __future__ import annotations

import pytest

from identity.identifiers import (
    DEFAULT_CUSTOM_TYPES,
    MAX_VALUE_CHARS,
    InvalidIdentifier,
    extract_identifiers,
    known_types,
    normalise,
)
from touchstream.errors import TouchstreamError, ValidationError


@pytest.mark.parametrize("raw", ["Person1@Example.com", "  person1@EXAMPLE.COM ", "PERSON1@example.com\t"])
def test_email_is_trimmed_validated_and_lower_cased(raw: str) -> None:
    assert normalise("email", raw) == "person1@example.com"


def test_email_keeps_plus_tags_and_unicode_domains_normalised() -> None:
    assert normalise("email", "A.B+Tag@QQ.com") == "a.b+tag@qq.com"
    assert normalise("email", "张三@例子.广告") == "张三@例子.广告"


@pytest.mark.parametrize("raw", ["bad-email", "a@", "@example.com", "a@@example.com", "a b@example.com",
                                 "x@localhost"])
def test_bad_email_syntax_is_rejected_with_a_reason(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalise("email", raw)
    assert caught.value.reason == "email_syntax"
    assert caught.value.field == "email"
    assert raw.strip() not in str(caught.value)  # identifiers are PII: never in the message


@pytest.mark.parametrize("raw", ["139 1234 5678", "+86 139-1234-5678", "008613912345678", "13912345678",
                                 "(+86) 139 1234 5678", 13912345678])
def test_chinese_mobile_spellings_give_one_e164(raw: object) -> None:
    assert normalise("phone", raw) == "+8613912345678"


def test_phone_default_region_is_used_for_national_numbers() -> None:
    assert normalise("phone", "(650) 253-0000", default_region="US") == "+16502530000"
    # An international number ignores the default region.
    assert normalise("phone", "+44 20 7031 3000", default_region="US") == "+442070313000"


@pytest.mark.parametrize("raw", ["12", "abc", "139 1234", "+86 000 0000 0000"])
def test_invalid_phone_is_rejected(raw: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalise("phone", raw)
    assert caught.value.reason == "phone_invalid"


def test_other_types_are_stripped_strings_and_numbers_are_stringified() -> None:
    assert normalise("user_id", "  u-1 ") == "u-1"
    assert normalise("user_id", 42) == "42"
    assert normalise("crm_id", 1234.0) == "1234"
    assert normalise("device_id", 1.5) == "1.5"
    assert normalise("wechat_openid", "oAbC") == "oAbC"  # case is kept for opaque ids


@pytest.mark.parametrize(("type_", "value", "reason"), [
    ("user_id", "   ", "empty"),
    ("user_id", "", "empty"),
    ("email", " ", "empty"),
    ("user_id", "x" * (MAX_VALUE_CHARS + 1), "too_long"),
    ("user_id", True, "not_a_string"),
    ("user_id", None, "not_a_string"),
    ("user_id", {"id": 1}, "not_a_string"),
    ("user_id", ["a"], "not_a_string"),
    ("user_id", float("nan"), "not_a_string"),
    ("Bad Type", "x", "unknown_type"),
])
def test_reasons(type_: str, value: object, reason: str) -> None:
    with pytest.raises(InvalidIdentifier) as caught:
        normalise(type_, value)
    assert caught.value.reason == reason


def test_max_length_value_is_accepted() -> None:
    assert normalise("user_id", "x" * MAX_VALUE_CHARS) == "x" * MAX_VALUE_CHARS


def test_invalid_identifier_is_a_project_validation_error() -> None:
    assert issubclass(InvalidIdentifier, ValidationError)
    assert issubclass(InvalidIdentifier, TouchstreamError)


def test_cached_failures_still_raise_every_time() -> None:
    for _ in range(3):
        with pytest.raises(InvalidIdentifier):
            normalise("email", "still-not-an-email")


def test_known_types() -> None:
    types = known_types(("crm_id", "member_no"))
    assert {"user_id", "anonymous_id", "email", "phone", "device_id", "crm_id", "member_no"} == types
    assert "wechat_openid" in known_types()


def test_extract_from_every_source_normalised_and_deduplicated() -> None:
    message = {
        "type": "identify",
        "userId": " u-1 ",
        "anonymousId": "a-1",
        "traits": {"email": "Person@Example.com", "phone": "139 1234 5678", "wechat_openid": "oX1",
                   "name": "ignored", "userId": "not-an-identifier-source"},
        "context": {
            "traits": {"email": "person@example.com ", "crm_id": 77},
            "device": {"id": "dev-9"},
            "externalIds": [
                {"id": "+86 139-1234-5678", "type": "phone", "collection": "users", "encoding": "none"},
                {"id": "GA1.2.3", "type": "ga_client_id", "collection": "users", "encoding": "none"},
                {"id": "U-1", "type": "wechat_unionid", "collection": "users", "encoding": "none"},
            ],
        },
    }
    valid, invalid = extract_identifiers(message, custom_types=DEFAULT_CUSTOM_TYPES, default_region="CN")
    assert invalid == []
    assert valid == [
        {"type": "user_id", "value": "u-1"},
        {"type": "anonymous_id", "value": "a-1"},
        {"type": "email", "value": "person@example.com"},
        {"type": "phone", "value": "+8613912345678"},
        {"type": "wechat_openid", "value": "oX1"},
        {"type": "crm_id", "value": "77"},
        {"type": "device_id", "value": "dev-9"},
        {"type": "ga_client_id", "value": "GA1.2.3"},
        {"type": "wechat_unionid", "value": "U-1"},
    ]


def test_extract_reports_invalid_values_without_raising() -> None:
    message = {
        "userId": "u-1",
        "traits": {"email": "nope", "phone": "12", "crm_id": {"nested": True}},
        "context": {"traits": {"email": "nope"},
                    "externalIds": [{"id": "x", "type": "Not A Type!"}, {"id": "y" * 300, "type": "crm_id"}]},
    }
    valid, invalid = extract_identifiers(message, custom_types=DEFAULT_CUSTOM_TYPES, default_region="CN")
    assert valid == [{"type": "user_id", "value": "u-1"}]
    assert [(i["type"], i["reason"]) for i in invalid] == [
        ("email", "email_syntax"),  # once, although it appears twice
        ("phone", "phone_invalid"),
        ("crm_id", "not_a_string"),
        ("Not A Type!", "unknown_type"),
        ("crm_id", "too_long"),
    ]
    assert invalid[0]["value"] == "nope"
    assert invalid[2]["value"] == '{"nested":true}'


def test_empty_and_null_values_are_absent_not_invalid() -> None:
    message = {"anonymousId": "a", "userId": "", "traits": {"email": "", "phone": None},
               "context": {"device": {"id": "  "}}}
    valid, invalid = extract_identifiers(message, custom_types=(), default_region="CN")
    assert valid == [{"type": "anonymous_id", "value": "a"}]
    assert invalid == []


def test_group_traits_describe_the_group_not_the_person() -> None:
    message = {"type": "group", "userId": "u", "groupId": "g",
               "traits": {"email": "sales@company.com"}, "context": {"traits": {"email": "me@company.com"}}}
    valid, _ = extract_identifiers(message, custom_types=(), default_region="CN")
    assert {"type": "email", "value": "sales@company.com"} not in valid
    assert {"type": "email", "value": "me@company.com"} in valid
    # The endpoint's type counts even when the body has none.
    del message["type"]
    valid, _ = extract_identifiers(message, custom_types=(), default_region="CN", message_type="group")
    assert {"type": "email", "value": "sales@company.com"} not in valid


def test_custom_types_are_configurable() -> None:
    message = {"userId": "u", "traits": {"member_no": "M-1", "crm_id": "C-1"}}
    valid, _ = extract_identifiers(message, custom_types=("member_no",), default_region="CN")
    assert {"type": "member_no", "value": "M-1"} in valid
    assert all(v["type"] != "crm_id" for v in valid)


def test_external_id_type_aliases_map_to_core_types() -> None:
    message = {"anonymousId": "a", "context": {"externalIds": [
        {"id": "X@Y.COM", "type": "Email"}, {"id": "u-7", "type": "userId"}, {"id": "d", "type": "deviceId"},
    ]}}
    valid, _ = extract_identifiers(message, custom_types=(), default_region="CN")
    assert {"type": "email", "value": "x@y.com"} in valid
    assert {"type": "user_id", "value": "u-7"} in valid
    assert {"type": "device_id", "value": "d"} in valid


def test_malformed_containers_are_ignored() -> None:
    message = {"userId": "u", "traits": "x",
               "context": {"traits": [1], "device": "d", "externalIds": {"a": 1}}}
    valid, invalid = extract_identifiers(message, custom_types=(), default_region="CN")
    assert valid == [{"type": "user_id", "value": "u"}]
    assert invalid == []
