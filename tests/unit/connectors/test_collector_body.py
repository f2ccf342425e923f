"""connectors.collector.body: bytes in, Python values out; a body that cannot be read is a 400."""

from __future__ import annotations

import gzip
import json

import pytest

from connectors.collector.body import decode_body, parse_json
from connectors.jsonsafe import BadNumber, child_field, find_bad, scan
from connectors.validation import REASONS
from touchstream.errors import ValidationError


def refused(raw: bytes) -> tuple[str, str]:
    with pytest.raises(ValidationError) as caught:
        parse_json(raw)
    assert caught.value.reason in REASONS
    return caught.value.field, caught.value.reason


def test_ordinary_json_is_read_as_the_stdlib_reads_it() -> None:
    text = json.dumps({"batch": [{"a": 1, "b": 1.5, "c": "é😀", "d": [True, None], "e": -(2**63)}]})
    assert parse_json(text.encode()) == json.loads(text)


@pytest.mark.parametrize("literal", [
    b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"9" * 5000,
    b"9223372036854775808", b"18446744073709551615", b"-9223372036854775809", b"12345678901234567890123",
])
def test_numbers_no_record_can_carry_become_bad_numbers_and_the_body_still_parses(literal: bytes) -> None:
    body = parse_json(b'{"ok": 1, "bad": ' + literal + b"}")
    assert body["ok"] == 1 and isinstance(body["bad"], BadNumber)


def test_64_bit_integers_stay_exact_even_next_to_a_long_digit_string() -> None:
    # a 19-digit run (here in a string) sends the body down the careful path: same values
    body = parse_json(b'{"id": "12345678901234567890", "max": 9223372036854775807, "f": 0.1}')
    assert body == {"id": "12345678901234567890", "max": 2**63 - 1, "f": 0.1}


@pytest.mark.parametrize(("raw", "expected"), [
    (b'{"a": "\\ud800"}', "\ud800"),
    (b'{"a": "\\udfff\\ud83d"}', "\udfff\ud83d"),
    (b'{"a": "\xed\xa0\x80"}', "\udced\udca0\udc80"),  # a surrogate encoded as UTF-8 bytes
    (b'{"a": "\xff"}', "\udcff"),  # not UTF-8 at all
])
def test_bad_text_parses_to_lone_surrogates_that_validation_rejects(raw: bytes, expected: str) -> None:
    assert parse_json(raw) == {"a": expected}


def test_a_byte_order_mark_is_ignored() -> None:
    assert parse_json(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}


@pytest.mark.parametrize(("raw", "reason"), [
    (b"", "malformed_json"),
    (b"{not json", "malformed_json"),
    (b'{"a": 1} trailing', "malformed_json"),
    (b'{"a": "\x01"}', "malformed_json"),
    (b"[" * 5000 + b"]" * 5000, "too_deep"),
    (b'{"a":' * 3000 + b"1" + b"}" * 3000, "too_deep"),
])
def test_a_body_nothing_can_read_is_refused_as_a_whole(raw: bytes, reason: str) -> None:
    assert refused(raw) == ("body", reason)


def test_nesting_orjson_reads_is_left_to_validation() -> None:
    body = parse_json(b"[" * 1000 + b"]" * 1000)
    assert isinstance(body, list)
    assert find_bad(body, 32) == ("body" + "[0]" * 32, "too_deep")


def test_gzip_is_inflated_and_bounded() -> None:
    assert decode_body(gzip.compress(b'{"a": 1}'), "gzip", 100) == ({"a": 1}, 8)
    with pytest.raises(ValidationError) as caught:
        decode_body(gzip.compress(b" " * 10_000 + b"{}"), "gzip", 1000)
    assert (caught.value.field, caught.value.reason) == ("body", "too_large")
    with pytest.raises(ValidationError) as caught:
        decode_body(b"\x1f\x8bnot gzip", "gzip", 1000)
    assert caught.value.reason == "malformed_gzip"
    with pytest.raises(ValidationError) as caught:
        decode_body(b"{}" + b" " * 1000, "", 1000)
    assert caught.value.reason == "too_large"


def test_scan_and_find_bad_agree_on_what_is_carried() -> None:
    good = {"a": [1, 2.5, "x", None, True, {"b": -(2**63)}], "c": 2**63 - 1}
    assert scan(good, 32) and find_bad(good, 32) is None
    for bad, where in [({"a": [1, float("nan")]}, "body.a[1]"), ({"a": {"b": 2**63}}, "body.a.b"),
                       ({"a": BadNumber("NaN")}, "body.a"), ({"a": (1, float("inf"))}, "body.a[1]")]:
        assert not scan(bad, 32)
        assert find_bad(bad, 32) == (where, "bad_number")
    assert scan({"a": "\ud800"}, 32)  # strings are left to the encoder
    assert find_bad({"a": "\ud800"}, 32) == ("body.a", "bad_unicode")


def test_field_names_are_printable_and_bounded() -> None:
    assert child_field("traits", "\ud800") == "traits.\\ud800"
    assert child_field("traits", "k" * 500) == "traits." + "k" * 64 + "…"
    assert child_field("", 3) == "3"
    assert len(child_field("x." * 200, "y")) <= 257
