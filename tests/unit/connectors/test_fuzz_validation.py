"""Property tests of the edge: whatever a client sends, the body reader and validation answer a
record or a ValidationError naming a field with a known reason, never another exception (a 5xx),
and every accepted record encodes as Avro and decodes back equal (nothing breaks downstream).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from connectors.collector.body import decode_body, parse_json
from connectors.jsonsafe import BadNumber
from connectors.validation import REASONS, TYPES, Limits, validate_batch, validate_message
from schemas.codec import default_registry
from touchstream.errors import ValidationError

RECEIVED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
RECEIVED_MS = int(RECEIVED.timestamp() * 1000)
LIMITS = Limits(max_traits_per_event=6, max_trait_key_chars=12, max_trait_value_chars=60,
                max_identifiers_per_event=5, max_depth=6)
ENCODE = default_registry().encoder("event")
DECODE = default_registry().decoder("event")
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

awkward_text = st.one_of(
    st.text(max_size=20),
    st.text(alphabet=st.characters(codec=None, categories=("Cs", "Lu", "Ll", "Nd", "Cc", "So")), max_size=12),
    st.sampled_from(["\ud800", "a\udfffb", "\ud83d", "😀", "", " ", "\x00", "x" * 200, "e@example.com",
                     "+8613912345678"]),
)
# built, not literal: hypothesis reprs its strategies, and repr() of a 4,300+ digit int raises
huge_ints = st.one_of(
    st.integers(-(2**64), 2**64),
    st.builds(lambda sign, k: sign * 10**k, st.sampled_from([1, -1]), st.integers(18, 5000)),
)
leaves = st.one_of(st.none(), st.booleans(), huge_ints, st.floats(), awkward_text,
                   st.builds(BadNumber, st.sampled_from(["NaN", "Infinity", "1e999"])))
json_values = st.recursive(
    leaves,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(awkward_text, inner, max_size=4)),
    max_leaves=10,
)


def nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


objects = st.one_of(st.dictionaries(awkward_text, json_values, max_size=5),
                    st.builds(lambda d: {"deep": nested(d)}, st.integers(0, 12)), json_values)
iso_times = st.builds(lambda s: (RECEIVED + timedelta(seconds=s)).isoformat(),
                      st.integers(-3 * 365 * 86400, 2 * 86400))
ids = st.one_of(st.text(min_size=1, max_size=8), awkward_text, st.integers(-(2**70), 2**70), json_values)
external_ids = st.lists(st.fixed_dictionaries({"id": ids, "type": st.sampled_from(["email", "crm_id", "x"])}),
                        max_size=8)
contexts = st.one_of(objects, st.fixed_dictionaries({}, optional={
    "traits": st.dictionaries(st.sampled_from(["email", "phone", "crm_id", "name", "k" * 20]), json_values,
                              max_size=4),
    "externalIds": external_ids,
    "ip": awkward_text,
}))
hostile_messages = st.fixed_dictionaries({}, optional={
    "type": st.one_of(st.sampled_from(sorted(TYPES)), json_values),
    "userId": ids, "anonymousId": ids, "messageId": st.one_of(st.uuids().map(str), ids),
    "event": st.one_of(st.sampled_from(["Order Completed", " "]), awkward_text, json_values),
    "name": st.one_of(awkward_text, json_values), "groupId": ids, "previousId": ids,
    "timestamp": st.one_of(iso_times, json_values), "originalTimestamp": iso_times, "sentAt": iso_times,
    "properties": objects, "traits": objects, "context": contexts, "integrations": objects,
})
# What a working SDK sends: valid values of every kind the record keeps (64-bit edges, emoji, nesting).
fine_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=10)
fine_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False,
              allow_infinity=False), fine_text),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(fine_text, inner, max_size=3)),
    max_leaves=8,
)
fine_messages = st.fixed_dictionaries({
    "type": st.sampled_from(sorted(TYPES)),
    "userId": st.one_of(st.text(min_size=1, max_size=8), st.integers(0, 2**63 - 1)),
    "anonymousId": st.uuids().map(str), "event": st.sampled_from(["Order Completed", "Viewed 😀"]),
    "name": fine_text, "groupId": st.text(min_size=1, max_size=5),
    "previousId": st.text(min_size=1, max_size=5),
}, optional={
    "messageId": st.uuids().map(str), "timestamp": iso_times, "originalTimestamp": iso_times,
    "sentAt": iso_times, "properties": st.dictionaries(fine_text, fine_values, max_size=4),
    # LIMITS allow 6 traits of 12-char names and 60-char values: some of these are over
    "traits": st.dictionaries(st.one_of(st.sampled_from(["email", "phone", "crm_id", "名前"]), fine_text),
                              st.one_of(fine_text, st.sampled_from(["a@example.com", "+8613912345678"]),
                                        st.lists(fine_text, max_size=8)), max_size=8),
    "context": st.fixed_dictionaries({}, optional={
        "externalIds": external_ids, "ip": fine_text,
        "traits": st.dictionaries(fine_text, fine_text, max_size=3)}),
    "integrations": st.dictionaries(fine_text, st.booleans(), max_size=2),
})
# Mostly what SDKs send, with one or two hostile fields now and then, and wholly hostile messages.
messages = st.one_of(
    fine_messages,
    st.builds(lambda fine, bad: {**fine, **bad}, fine_messages, hostile_messages),
    hostile_messages,
)


def assert_round_trip(record: dict) -> None:
    """Every accepted record encodes as Avro and decodes back equal."""
    event("accepted")
    assert DECODE(ENCODE(record)) == record


def assert_known(error: ValidationError) -> None:
    event(f"rejected: {error.reason}")
    assert error.reason in REASONS, error.reason
    assert isinstance(error.field, str) and error.field
    str(error).encode("utf-8")  # an answer body can always carry the message


@FUZZ
@given(message=st.one_of(messages, json_values), type_=st.sampled_from([None, *sorted(TYPES)]))
@example(message={"userId": "u", "event": "E", "properties": {"r": float("nan")}}, type_="track")
@example(message={"userId": "u", "traits": {"\ud800": 1}}, type_="identify")
def test_validate_message_answers_a_round_tripping_record_or_a_named_reason(message: object,
                                                                            type_: str | None) -> None:
    try:
        record = validate_message(message, type_=type_, received_at_ms=RECEIVED_MS, source="fuzz",
                                  limits=LIMITS)
    except ValidationError as exc:
        assert_known(exc)
        return
    assert_round_trip(record)


@FUZZ
@given(items=st.lists(st.one_of(messages, json_values), max_size=6),
       envelope=st.fixed_dictionaries({}, optional={"context": objects, "integrations": objects,
                                                    "sentAt": st.one_of(iso_times, json_values)}))
def test_validate_batch_rejects_only_bad_messages_and_accepted_ones_round_trip(items: list,
                                                                               envelope: dict) -> None:
    try:
        records, outcomes = validate_batch({"batch": items, **envelope}, received_at_ms=RECEIVED_MS,
                                           source="fuzz", limits=LIMITS)
    except ValidationError as exc:
        assert_known(exc)
        return
    assert len(records) == len(outcomes) == len(items)
    for record, outcome in zip(records, outcomes, strict=True):
        assert outcome.accepted == (record is not None)
        if record is None:
            assert outcome.reason in REASONS and outcome.field
        else:
            assert_round_trip(record)


def _read_and_validate(raw: bytes) -> None:
    try:
        body, size = decode_body(raw, "", 500 * 1024)
        records, _ = validate_batch(body, received_at_ms=RECEIVED_MS, source="fuzz", limits=LIMITS,
                                    raw_size=size)
    except ValidationError as exc:
        assert_known(exc)
        return
    for record in records:
        if record is not None:
            assert_round_trip(record)


@FUZZ
@given(raw=st.binary(max_size=300))
@example(raw=b"[" * 5000)
@example(raw=b'{"batch": [' + b"[" * 2000 + b"]" * 2000 + b"]}")
@example(raw=b'{"batch": [{"type": "track", "userId": "u", "event": "E", "properties": {"n": ' + b"9" * 5000
         + b"}}]}")
def test_the_body_reader_on_arbitrary_bytes_raises_only_validation_errors(raw: bytes) -> None:
    _read_and_validate(raw)


def _json_text(value: object) -> str:
    """JSON text as a careless client writes it: NaN, Infinity, \\ud800 escapes, huge integers."""
    if isinstance(value, BadNumber):
        return value.text
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_json_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**4000:
        return "9" * 4500  # str() refuses 4,300+ digits; the text is what matters
    return json.dumps(value)


@FUZZ
@given(items=st.lists(st.one_of(messages, json_values), max_size=5), cut=st.integers(0, 10_000),
       noise=st.binary(max_size=3))
def test_careless_json_texts_and_their_mutations_raise_only_validation_errors(items: list, cut: int,
                                                                              noise: bytes) -> None:
    text = _json_text({"batch": items}).encode("utf-8", "surrogatepass")
    _read_and_validate(text)
    at = cut % (len(text) + 1)
    _read_and_validate(text[:at] + noise + text[at:])


def test_a_body_with_lone_surrogates_parses_and_validation_names_them() -> None:
    body = parse_json(b'{"batch": [{"type": "page", "anonymousId": "a", "name": "\\ud83d"}]}')
    _, outcomes = validate_batch(body, received_at_ms=RECEIVED_MS, source="fuzz", limits=LIMITS)
    assert [(o.field, o.reason) for o in outcomes] == [("name", "bad_unicode")]
