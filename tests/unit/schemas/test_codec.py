from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import pytest
from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from schemas.codec import (
    EVENT,
    HEADER_SIZE,
    MAGIC,
    SCHEMA_DIR,
    SchemaRegistry,
    default_registry,
    fingerprint,
)
from schemas.exceptions import DecodeError, EncodeError, UnknownSchemaError
from tests.unit.schemas.conftest import SAMPLES, STEMS, record_schema
from touchstream.errors import ConfigError, SchemaError

NAMES = sorted(SAMPLES)


def test_registry_holds_every_shipped_schema() -> None:
    assert default_registry().names == tuple(NAMES)
    assert default_registry() is default_registry()


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_of_every_record_type(name: str) -> None:
    registry = default_registry()
    data = registry.encode(name, SAMPLES[name])
    assert registry.decode(data) == (name, SAMPLES[name])
    assert registry.decoder(name)(data) == SAMPLES[name]
    assert registry.encoder(name)(SAMPLES[name]) == data


def test_times_come_back_as_plain_int_milliseconds() -> None:
    event = default_registry().decode(default_registry().encode(EVENT, SAMPLES[EVENT]))[1]
    for key in ("timestamp", "received_at", "original_timestamp", "sent_at"):
        assert type(event[key]) is int
    assert event["timestamp"] == SAMPLES[EVENT]["timestamp"]


def test_optional_fields_take_their_defaults() -> None:
    registry = default_registry()
    minimal = {"message_id": "m", "type": "identify", "timestamp": 5, "received_at": 6, "source": "crm"}
    event = registry.decode(registry.encode(EVENT, minimal), EVENT)[1]
    assert event["user_id"] is None and event["oneid"] is None and event["sent_at"] is None
    assert event["identifiers"] == [] and event["invalid_identifiers"] == []
    assert event["properties"] == event["traits"] == event["context"] == event["integrations"] == "{}"
    trigger = {k: v for k, v in SAMPLES["Trigger"].items() if k not in ("marketing", "message_id", "values")}
    decoded = registry.decode(registry.encode("Trigger", trigger))[1]
    assert decoded["marketing"] is False and decoded["message_id"] is None and decoded["values"] == "{}"
    letter = {k: v for k, v in SAMPLES["DeadLetter"].items() if k != "attempts"}
    assert registry.decode(registry.encode("DeadLetter", letter))[1]["attempts"] == 1


def test_fingerprint_matches_the_avro_spec_vector() -> None:
    # Apache Avro's own test: schema "int" -> single-object header C3 01 8F 5C 39 3F 1A D5 75 72.
    assert MAGIC + fingerprint("int") == bytes.fromhex("c3018f5c393f1ad57572")


@pytest.mark.parametrize("name", NAMES)
def test_header_is_marker_and_fingerprint_of_the_canonical_form(name: str) -> None:
    registry = default_registry()
    data = registry.encode(name, SAMPLES[name])
    raw = json.loads((SCHEMA_DIR / f"{STEMS[name]}.avsc").read_text())
    assert data[:2] == b"\xc3\x01"
    assert data[2:HEADER_SIZE] == fingerprint(raw) == registry.fingerprint(name)
    # the fingerprint ignores docs and defaults: only the Parsing Canonical Form counts
    assert to_parsing_canonical_form(parse_schema(raw)) == to_parsing_canonical_form(raw)
    assert registry.name_of(data) == name


def test_event_type_is_an_enum_that_rejects_unknown_types() -> None:
    with pytest.raises(EncodeError, match="'Event'"):
        default_registry().encode(EVENT, {**SAMPLES[EVENT], "type": "purchase"})


def test_encode_errors_name_the_field_not_the_value() -> None:
    registry = default_registry()
    secret = "jane.secret@example.com"
    with pytest.raises(EncodeError) as missing:
        registry.encode(EVENT, {k: v for k, v in SAMPLES[EVENT].items() if k != "source"})
    assert missing.value.reason == "invalid_record" and "source" in str(missing.value)
    with pytest.raises(EncodeError) as wrong:
        registry.encode(EVENT, {**SAMPLES[EVENT], "user_id": 12, "received_at": secret})
    assert secret not in str(wrong.value) and wrong.value.__cause__ is None
    with pytest.raises(UnknownSchemaError, match="unknown schema 'nope'; known: DeadLetter, ") as unknown:
        registry.encoder("nope")
    assert unknown.value.reason == "unknown_schema"
    assert isinstance(unknown.value, SchemaError)


def test_file_stems_and_full_names_are_accepted_spellings() -> None:
    registry = default_registry()
    data = registry.encode("event", SAMPLES[EVENT])
    assert registry.encode("io.touchstream.Event", SAMPLES[EVENT]) == data
    assert registry.decode(data, expected="event") == (EVENT, SAMPLES[EVENT])
    assert registry.decoder("io.touchstream.Event")(data) == SAMPLES[EVENT]
    assert registry.canonical("identity_merge") == "IdentityMerge"
    with pytest.raises(UnknownSchemaError):
        registry.decode(data, expected="Nope")


# -- evolution ---------------------------------------------------------------------------------

OLD = record_schema("Thing", [{"name": "id", "type": "string"}, {"name": "gone", "type": "int"}])
NEW = record_schema(
    "Thing",
    [
        {"name": "id", "type": "string"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "score", "type": "long", "default": 7},
    ],
)


def test_bytes_from_an_older_writer_resolve_to_the_current_schema(make_registry: Callable[..., Path]) -> None:
    old_only = SchemaRegistry(make_registry({"thing": OLD}))
    old_bytes = old_only.encode("thing", {"id": "a", "gone": 3})

    registry = SchemaRegistry(make_registry({"thing": NEW}, {"thing": {"v1": OLD}}))
    assert registry.fingerprint("Thing") != old_only.fingerprint("Thing")
    expected = {"id": "a", "note": None, "score": 7}
    assert registry.decode(old_bytes) == ("Thing", expected)
    assert registry.decoder("Thing")(old_bytes) == expected
    assert [v.version for v in registry.versions("Thing")] == ["v1", "current"]
    assert {v.name for v in registry.versions("thing")} == {"Thing"}
    # and current bytes still decode on the fast path
    assert registry.decode(registry.encode("thing", {"id": "b", "note": "n"}))[1] == {
        "id": "b", "note": "n", "score": 7,
    }


def test_an_unpinned_old_writer_is_an_unknown_fingerprint(make_registry: Callable[..., Path]) -> None:
    old_bytes = SchemaRegistry(make_registry({"thing": OLD})).encode("thing", {"id": "a", "gone": 3})
    registry = SchemaRegistry(make_registry({"thing": NEW}))
    fp = old_bytes[2:10].hex()
    with pytest.raises(DecodeError, match=f"unknown writer schema fingerprint {fp}") as err:
        registry.decode(old_bytes)
    assert err.value.reason == "unknown_fingerprint"


def test_history_versions_sort_numerically(make_registry: Callable[..., Path]) -> None:
    versions = {f"v{i}": record_schema("Thing", [{"name": f"f{i}", "type": "int", "default": i}])
                for i in (1, 2, 10)}
    registry = SchemaRegistry(make_registry({"thing": NEW}, {"thing": versions}))
    assert [v.version for v in registry.history("thing")] == ["v1", "v2", "v10"]


def test_broken_schema_files_are_config_errors(make_registry: Callable[..., Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no \.avsc"):
        SchemaRegistry(tmp_path)
    (tmp_path / "bad.avsc").write_text('{"type": "record", "name": "X", "fields": [{"name": "a"}]}')
    with pytest.raises(ConfigError, match=r"bad\.avsc"):
        SchemaRegistry(tmp_path)
    (tmp_path / "bad.avsc").unlink()
    with pytest.raises(ConfigError, match="orphan"):
        SchemaRegistry(make_registry({"thing": NEW}, {"orphan": {"v1": OLD}}))


# -- bad bytes ---------------------------------------------------------------------------------


def _event_bytes() -> bytes:
    return default_registry().encode(EVENT, SAMPLES[EVENT])


@pytest.mark.parametrize(
    ("data", "reason", "words"),
    [
        (b"", "truncated", "empty message"),
        (b"\xc3", "truncated", "shorter than the single-object header"),
        (b"{\"json\": 1}", "bad_marker", "starts with 7b22"),
        (b"\xc3\x01\x01\x02", "truncated", "shorter than the 10-byte"),
        (b"\xc3\x01" + bytes(8) + b"\x00", "unknown_fingerprint", "0000000000000000"),
    ],
)
def test_bad_headers_raise_schema_error_naming_the_problem(data: bytes, reason: str, words: str) -> None:
    for decode in (default_registry().decode, default_registry().decoder(EVENT)):
        with pytest.raises(SchemaError, match=words) as err:
            decode(data)
        assert isinstance(err.value, DecodeError) and err.value.reason == reason


def test_truncated_body_is_reported() -> None:
    data = _event_bytes()
    with pytest.raises(DecodeError, match="ends early") as err:
        default_registry().decode(data[:-40])
    assert err.value.reason == "truncated"


def test_trailing_bytes_are_reported() -> None:
    with pytest.raises(DecodeError, match="ends at byte") as err:
        default_registry().decoder(EVENT)(_event_bytes() + b"\x00")
    assert err.value.reason == "trailing_bytes"


def test_garbage_body_is_reported() -> None:
    data = bytearray(_event_bytes())
    data[HEADER_SIZE + 2 : HEADER_SIZE + 6] = b"\xff\xff\xff\x7f"  # a huge bogus enum index
    with pytest.raises(DecodeError) as err:
        default_registry().decode(bytes(data))
    assert err.value.reason in {"bad_body", "truncated"} and "'Event'" in str(err.value)


def test_a_record_of_another_schema_is_refused_when_a_name_is_expected() -> None:
    registry = default_registry()
    trigger = registry.encode("Trigger", SAMPLES["Trigger"])
    with pytest.raises(DecodeError, match="expected a 'Event' record, got 'Trigger'") as err:
        registry.decode(trigger, expected="event")
    assert err.value.reason == "unexpected_schema"
    with pytest.raises(DecodeError, match="got 'Trigger'"):
        registry.decoder(EVENT)(trigger)


def test_bytearray_and_memoryview_decode_like_bytes() -> None:
    data = _event_bytes()
    decode = default_registry().decoder(EVENT)
    assert decode(bytearray(data)) == decode(memoryview(data)) == SAMPLES[EVENT]  # type: ignore[arg-type]


def test_random_corruption_only_ever_raises_schema_error() -> None:
    """A worker must be able to dead-letter any bytes: nothing but SchemaError may escape."""
    rnd = random.Random(20240601)
    original = _event_bytes()
    decode = default_registry().decoder(EVENT)
    outcomes: set[str] = set()
    for _ in range(3000):
        data = bytearray(original)
        kind = rnd.randrange(3)
        if kind == 0:
            data = data[: rnd.randrange(HEADER_SIZE, len(data))]
        elif kind == 1:
            for _ in range(rnd.randrange(1, 6)):
                data[rnd.randrange(HEADER_SIZE, len(data))] = rnd.randrange(256)
        else:
            data = data[:HEADER_SIZE] + bytes(rnd.randrange(256) for _ in range(rnd.randrange(80)))
        try:
            record = decode(bytes(data))
        except SchemaError as exc:
            outcomes.add(exc.reason)  # type: ignore[attr-defined]
        else:
            assert isinstance(record, dict) and set(record) == set(SAMPLES[EVENT])
    assert {"truncated", "bad_body"} <= outcomes


# -- oneid stamping ----------------------------------------------------------------------------


@pytest.mark.parametrize("oneid", ["o", "0f8fad5b-d9cb-469f-a165-70867728950e", "x" * 300, "同一人"])
def test_stamp_oneid_equals_a_full_re_encode(oneid: str) -> None:
    registry = default_registry()
    stamped = registry.stamp_oneid(_event_bytes(), oneid)
    assert stamped == registry.encode(EVENT, {**SAMPLES[EVENT], "oneid": oneid})
    assert registry.decode(stamped, EVENT)[1]["oneid"] == oneid


def test_stamp_oneid_re_stamps_and_upgrades_old_writers(make_registry: Callable[..., Path]) -> None:
    registry = default_registry()
    twice = registry.stamp_oneid(registry.stamp_oneid(_event_bytes(), "first"), "second")
    assert registry.decode(twice, EVENT)[1] == {**SAMPLES[EVENT], "oneid": "second"}

    event = json.loads((SCHEMA_DIR / "event.avsc").read_text())
    old_event = {**event, "fields": [f for f in event["fields"] if f["name"] != "traits"]}
    old_bytes = SchemaRegistry(make_registry({EVENT: old_event})).encode(EVENT, SAMPLES[EVENT])
    evolved = SchemaRegistry(make_registry({EVENT: event}, {EVENT: {"v1": old_event}}))
    stamped = evolved.stamp_oneid(old_bytes, "oid")
    assert stamped[:HEADER_SIZE] == MAGIC + evolved.fingerprint(EVENT)
    assert evolved.decode(stamped)[1] == {**SAMPLES[EVENT], "traits": "{}", "oneid": "oid"}
