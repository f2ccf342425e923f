"""Segment Tracking API validation: a client's message in, the shared Event record dict out.

The collector (HTTP) and the importers both go through here, so "what is a valid event" and
"what the record looks like" are decided once. Errors name the offending field and carry a
stable reason code from :data:`REASONS` (they become HTTP 400 bodies and metric labels).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.jsonsafe import child_field, dumped_size, dumps, find_bad, scan
from connectors.outcome import Outcome
from identity.identifiers import (
    CORE_TYPES,
    DEFAULT_CUSTOM_TYPES,
    TYPE_NAME,
    InvalidIdentifier,
    extract_identifiers,
    normalise,
)
from schemas.vocabulary import EVENT_TYPES
from touchstream.errors import ConfigError, ValidationError
from touchstream.settings import Settings
from touchstream.text import is_utf8

TYPES: frozenset[str] = EVENT_TYPES

#: Every reason code a message can be rejected with at the edge; stable metric label values.
REASONS: tuple[str, ...] = (
    # raised by the collector while reading the body (connectors/collector/body.py)
    "malformed_json",          # the body is not JSON
    "malformed_gzip",          # Content-Encoding: gzip but the body is not gzip
    "unsupported_encoding",    # a Content-Encoding other than gzip/identity
    "unreadable_body",         # the HTTP body was cut short or badly chunked
    # raised here
    "not_an_object",           # body / batch item / properties / traits / context / integrations
    "not_a_list",              # batch is not an array
    "not_a_string",            # messageId, userId, anonymousId, event, name, groupId, previousId, type
    "missing",                 # a required field is absent or empty (type, event, groupId, previousId, ...)
    "missing_identity",        # neither userId nor anonymousId
    "unknown_type",            # type is not identify/track/page/screen/group/alias
    "too_long",                # messageId > 100 chars, ids > 256 chars, trait name or value (JSON) too long
    "too_large",               # message > 32 KB, batch > 500 KB
    "too_many",                # batch > 2500 messages
    "bad_timestamp",           # timestamp / originalTimestamp / sentAt not ISO-8601
    "timestamp_out_of_range",  # event time too old or too far in the future
    "bad_number",              # NaN, Infinity, a float beyond double range, an integer beyond 64 bits
    "bad_unicode",             # a lone surrogate (or bytes that are not UTF-8) in a string or key
    "too_deep",                # objects/arrays nested deeper than Limits.max_depth (the body: unparsable)
    "too_many_traits",         # more traits than Limits.max_traits (identify: traits + context.traits)
    "too_many_identifiers",    # more identifiers (valid or not) than Limits.max_identifiers
    "rate_limited",            # the write key sent more events than its rate allows (HTTP 429)
)

#: invalid-identifier reason: the write key may not assert this type (touchstream/keys.py)
NOT_ASSERTABLE = "not_assertable"
_OBJECT_FIELDS = ("properties", "traits", "context", "integrations")
#: the identifier normaliser's reasons, in this module's vocabulary (REASONS)
_ID_REASONS = {"not_utf8": "bad_unicode", "empty": "missing"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


@dataclass(frozen=True)
class Limits:
    """The edge's limits (Segment's own numbers by default) and identifier settings."""

    max_message_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    max_batch_messages: int = 2500
    max_message_id_chars: int = 100
    max_age_s: int = 2 * 365 * 24 * 3600
    max_future_s: int = 24 * 3600
    custom_types: tuple[str, ...] = field(default=DEFAULT_CUSTOM_TYPES)
    default_region: str = "CN"
    #: levels of objects/arrays in one message, the message itself being level 1
    max_depth: int = 32
    max_traits_per_event: int = 200
    max_trait_key_chars: int = 128
    #: a trait value's length as JSON text, characters
    max_trait_value_chars: int = 4096
    max_identifiers_per_event: int = 20

    def __post_init__(self) -> None:
        for name in self.custom_types:
            if not TYPE_NAME.match(name) or name in CORE_TYPES:
                raise ConfigError(
                    f"custom identifier type {name!r} must match {TYPE_NAME.pattern} and not be a core type"
                )

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> Limits:
        """Limits from the settings (phone region, event age/future bounds, caps); ``overrides`` win."""
        values: dict[str, Any] = {
            "default_region": settings.default_phone_region.upper(),
            "max_age_s": settings.max_event_age_s,
            "max_future_s": settings.max_event_future_s,
            "max_traits_per_event": settings.max_traits_per_event,
            "max_trait_key_chars": settings.max_trait_key_chars,
            "max_trait_value_chars": settings.max_trait_value_chars,
            "max_identifiers_per_event": settings.max_identifiers_per_event,
        }
        values.update(overrides)
        return cls(**values)


def message_size(message: object) -> int:
    """UTF-8 bytes of the compact JSON text of ``message`` (when the raw size is unknown).

    A value no JSON text can hold raises :class:`ValidationError` naming it.
    """
    try:
        return dumped_size(message)
    except TypeError:  # orjson.JSONEncodeError
        raise bad_value(message, "", Limits.max_depth) from None


def check_values(message: dict[str, Any], limits: Limits) -> None:
    """Every number of ``message`` is a 64-bit integer or a finite float and it nests at most
    ``limits.max_depth`` levels; else :class:`ValidationError` naming the field.

    One cheap pass for the normal case; the slow walk that names the field runs on failure only.
    """
    if not scan(message, limits.max_depth):
        raise bad_value(message, "", limits.max_depth)


def bad_value(value: object, field_name: str, max_depth: int, level: int = 1) -> ValidationError:
    """The error naming the first field of ``value`` a record cannot carry (depth, number, text).

    ``field_name`` names ``value`` ("" for a whole message: its fields are named bare).
    """
    found = find_bad(value, max_depth, field_name, level)
    if found is None:  # a check and find_bad disagree: still the client's value, never a 500
        return ValidationError(field_name or "body", "bad_unicode", "the value cannot be written as JSON")
    where, reason = found
    where = where or "body"
    return ValidationError(where, reason, f"{where}: {_EXPLAIN[reason]}")


_EXPLAIN = {
    "too_deep": "objects and arrays nest too deeply",
    "bad_number": "numbers must be finite and integers fit in 64 bits",
    "bad_unicode": "text must be valid Unicode (no lone surrogates)",
}


def validate_message(
    message: object,
    *,
    type_: str | None,
    received_at_ms: int,
    source: str,
    limits: Limits,
    raw_size: int | None = None,
    trusted: bool = True,
    assertable: Collection[str] | None = None,
) -> dict[str, Any]:
    """The Event record for one Segment message, or :class:`ValidationError` naming the field.

    ``type_`` is the endpoint's type (``/v1/track`` -> ``"track"``); None means the message's
    own ``type`` decides (``/v1/batch``, ``/v1/import``). ``trusted`` and ``assertable`` come from
    the write key (touchstream/keys.py; importers are trusted and assert every type): the record
    carries the trust (an untrusted one links identifiers but never merges people), and
    identifiers of a type the key may not assert become invalid identifiers (``not_assertable``).
    """
    if not isinstance(message, dict):
        raise ValidationError("body", "not_an_object", "the message must be a JSON object")
    check_values(message, limits)
    size = message_size(message) if raw_size is None else raw_size
    if size > limits.max_message_bytes:
        raise ValidationError(
            "body", "too_large", f"the message is {size} bytes; the limit is {limits.max_message_bytes}"
        )
    mtype = _message_type(message, type_)
    get = message.get

    user_id = _id_field(get("userId"), "userId")
    anonymous_id = _id_field(get("anonymousId"), "anonymousId")
    if user_id is None and anonymous_id is None:
        raise ValidationError("userId", "missing_identity", "a message needs a userId or an anonymousId")

    message_id = _message_id(get("messageId"), limits.max_message_id_chars)

    event = name = previous_id = group_id = None
    if mtype == "track":
        event = get("event")
        if event is None or event == "":
            raise ValidationError("event", "missing", "a track call needs an event name")
        if not isinstance(event, str):
            raise ValidationError("event", "not_a_string", "event must be a string")
        if not event.strip():
            raise ValidationError("event", "missing", "a track call needs an event name")
    elif mtype in ("page", "screen"):
        name = get("name")
        if name is not None and not isinstance(name, str):
            raise ValidationError("name", "not_a_string", "name must be a string")
        name = name or None
    elif mtype == "group":
        group_id = _id_field(get("groupId"), "groupId")
        if group_id is None:
            raise ValidationError("groupId", "missing", "a group call needs a groupId")
    elif mtype == "alias":
        previous_id = _id_field(get("previousId"), "previousId")
        if previous_id is None:
            raise ValidationError("previousId", "missing", "an alias call needs a previousId")
        if user_id is None:
            raise ValidationError("userId", "missing", "an alias call needs a userId")
    for field_name, value in (("messageId", message_id), ("event", event), ("name", name),
                              ("userId", user_id), ("anonymousId", anonymous_id), ("groupId", group_id),
                              ("previousId", previous_id)):
        if value is not None and not is_utf8(value):
            raise ValidationError(field_name, "bad_unicode", f"{field_name}: {_EXPLAIN['bad_unicode']}")

    objects: dict[str, Any] = {}
    for key in _OBJECT_FIELDS:
        value = get(key)
        if value is None:
            objects[key] = None
        elif isinstance(value, dict):
            objects[key] = value
        else:
            raise ValidationError(key, "not_an_object", f"{key} must be a JSON object")
    traits = objects["traits"]
    if mtype == "identify":
        # Segment accepts an identify's traits in context.traits too; top-level keys win.
        context_traits = objects["context"].get("traits") if objects["context"] else None
        if isinstance(context_traits, dict) and context_traits:
            traits = {**context_traits, **traits} if traits else context_traits
    texts = {key: _json_text(key, objects[key], limits) for key in ("properties", "context", "integrations")}
    traits_text = _json_text("traits", traits, limits)
    if traits:
        _check_traits(traits, limits)

    timestamp_ms, original_ms, sent_ms = _event_time(get, received_at_ms, limits)

    _check_external_ids(objects["context"], limits)
    identifiers, invalid = extract_identifiers(
        message,
        custom_types=limits.custom_types,
        default_region=limits.default_region,
        message_type=mtype,
    )
    if len(identifiers) + len(invalid) > limits.max_identifiers_per_event:
        context = objects["context"] or {}
        where = "context.externalIds" if context.get("externalIds") else "traits"
        raise ValidationError(
            where, "too_many_identifiers",
            f"{len(identifiers) + len(invalid)} identifiers; the limit is {limits.max_identifiers_per_event}",
        )
    if assertable is not None and any(i["type"] not in assertable for i in identifiers):
        identifiers, invalid = _assertable_only(identifiers, invalid, assertable)
    return {
        "message_id": message_id,
        "type": mtype,
        "event": event,
        "name": name,
        "anonymous_id": anonymous_id,
        "user_id": user_id,
        "previous_id": previous_id,
        "group_id": group_id,
        "timestamp": timestamp_ms,
        "original_timestamp": original_ms,
        "sent_at": sent_ms,
        "received_at": received_at_ms,
        "source": source,
        "identifiers": identifiers,
        "invalid_identifiers": invalid,
        "properties": texts["properties"],
        "traits": traits_text,
        "context": texts["context"],
        "integrations": texts["integrations"],
        "trusted": trusted,
        "oneid": None,
    }


def _assertable_only(identifiers: list[dict[str, str]], invalid: list[dict[str, str]],
                     assertable: Collection[str]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Identifiers the key may assert; the rest kept as invalid (a browser cannot claim a crm_id)."""
    kept = [i for i in identifiers if i["type"] in assertable]
    dropped = [{**i, "reason": NOT_ASSERTABLE} for i in identifiers if i["type"] not in assertable]
    return kept, invalid + dropped


def _check_external_ids(context: dict[str, Any] | None, limits: Limits) -> None:
    """More externalIds entries than identifiers allowed: rejected before any is normalised (a
    32 KB message of phone numbers would otherwise cost ~1,000 phone parses)."""
    external = context.get("externalIds") if context else None
    if isinstance(external, list) and len(external) > limits.max_identifiers_per_event:
        entries = sum(1 for item in external if isinstance(item, dict))
        if entries > limits.max_identifiers_per_event:
            raise ValidationError("context.externalIds", "too_many_identifiers",
                                  f"{entries} externalIds; the limit is {limits.max_identifiers_per_event}")


def _check_traits(traits: dict[str, Any], limits: Limits) -> None:
    """Trait caps: how many, how long a name, how long a value as JSON text.

    Runs after the traits' JSON text was written, so every value here can be written.
    """
    if len(traits) > limits.max_traits_per_event:
        raise ValidationError(
            "traits", "too_many_traits", f"{len(traits)} traits; the limit is {limits.max_traits_per_event}"
        )
    max_key, max_value = limits.max_trait_key_chars, limits.max_trait_value_chars
    # A string's JSON text is at most 6 chars per char (\uXXXX) plus quotes; a number's at most 24.
    short_str = (max_value - 2) // 6
    short_number = max_value >= 24
    for key, value in traits.items():
        if type(key) is str and len(key) > max_key:
            raise ValidationError(child_field("traits", key), "too_long",
                                  f"trait names are at most {max_key} characters")
        kind = type(value)
        if kind is str:
            if len(value) <= short_str:
                continue
        elif value is None or kind is bool or ((kind is int or kind is float) and short_number):
            continue
        # UTF-8 bytes bound the characters from above: decode only when the bytes are over.
        if dumped_size(value) > max_value and len(dumps(value)) > max_value:
            raise ValidationError(child_field("traits", key), "too_long",
                                  f"trait values are at most {max_value} characters as JSON")


def validate_batch(
    body: object,
    *,
    received_at_ms: int,
    source: str,
    limits: Limits,
    raw_size: int | None = None,
    trusted: bool = True,
    assertable: Collection[str] | None = None,
) -> tuple[list[dict[str, Any] | None], list[Outcome]]:
    """Records and outcomes, index by index, for a ``/v1/batch`` or ``/v1/import`` body.

    A bad envelope (not an object, no ``batch`` array, too large, too many messages) raises
    :class:`ValidationError`; a bad message only rejects itself. The batch's ``context``,
    ``integrations`` and ``sentAt`` apply to every message; the message's own values win.
    """
    if not isinstance(body, dict):
        raise ValidationError("batch", "not_an_object", "the body must be a JSON object with a batch array")
    size = _size_if_writable(body) if raw_size is None else raw_size
    if size is not None and size > limits.max_batch_bytes:
        raise ValidationError(
            "batch", "too_large", f"the batch is {size} bytes; the limit is {limits.max_batch_bytes}"
        )
    batch = body.get("batch")
    if batch is None:
        raise ValidationError("batch", "missing", "the body needs a batch array")
    if not isinstance(batch, list):
        raise ValidationError("batch", "not_a_list", "batch must be a JSON array")
    if len(batch) > limits.max_batch_messages:
        raise ValidationError(
            "batch", "too_many", f"{len(batch)} messages; the limit is {limits.max_batch_messages}"
        )
    shared: dict[str, Any] = {}
    for key in ("context", "integrations"):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, dict):
            raise ValidationError(key, "not_an_object", f"the batch's {key} must be a JSON object")
        if value:
            shared[key] = value
    sent_at = body.get("sentAt")
    # No item can be larger than the whole body: skip measuring items of a small batch.
    measure = size is None or size > limits.max_message_bytes

    records: list[dict[str, Any] | None] = []
    outcomes: list[Outcome] = []
    for index, item in enumerate(batch):
        try:
            if not isinstance(item, dict):
                raise ValidationError("body", "not_an_object", "each batch item must be a JSON object")
            item_size = message_size(item) if measure else 0
            merged = _with_batch_values(item, shared, sent_at)
            record = validate_message(
                merged, type_=None, received_at_ms=received_at_ms, source=source, limits=limits,
                raw_size=item_size, trusted=trusted, assertable=assertable,
            )
        except ValidationError as exc:
            records.append(None)
            outcomes.append(Outcome.from_error(index, exc))
            continue
        records.append(record)
        outcomes.append(Outcome(index, True))
    return records, outcomes


def _size_if_writable(body: dict[str, Any]) -> int | None:
    """The body's JSON size, or None when a value in it cannot be written (its message says which)."""
    try:
        return dumped_size(body)
    except TypeError:  # orjson.JSONEncodeError
        return None


def _with_batch_values(item: dict[str, Any], shared: Mapping[str, Any], sent_at: object) -> dict[str, Any]:
    if not shared and (sent_at is None or "sentAt" in item):
        return item
    merged = dict(item)
    for key, batch_value in shared.items():
        own = item.get(key)
        if own is None:
            merged[key] = batch_value
        elif isinstance(own, dict):
            merged[key] = {**batch_value, **own}
        # a non-object of the message's own is left for validate_message to reject
    if sent_at is not None and item.get("sentAt") is None:
        merged["sentAt"] = sent_at
    return merged


def _message_type(message: Mapping[str, Any], type_: str | None) -> str:
    if type_ is not None:
        if type_ not in TYPES:
            raise ValueError(f"unknown endpoint type {type_!r}")
        return type_
    mtype = message.get("type")
    if mtype is None or mtype == "":
        raise ValidationError("type", "missing", "each message needs a type")
    if not isinstance(mtype, str):
        raise ValidationError("type", "not_a_string", "type must be a string")
    if mtype not in TYPES:
        raise ValidationError(
            "type", "unknown_type", "type must be one of identify, track, page, screen, group, alias"
        )
    return mtype


def _id_field(value: object, field_name: str) -> str | None:
    """A userId-like field: string or number, stripped; empty counts as absent."""
    if value is None:
        return None
    if type(value) is str:
        if not value or value.isspace():
            return None
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(field_name, "not_a_string", f"{field_name} must be a string or a number")
    try:
        return normalise("user_id", value)
    except InvalidIdentifier as exc:
        reason = _ID_REASONS.get(exc.reason, exc.reason)
        raise ValidationError(field_name, reason, f"{field_name}: {reason}") from None


def _message_id(value: object, max_chars: int) -> str:
    if value is None or value == "":
        return uuid.uuid4().hex
    if type(value) is not str:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValidationError("messageId", "not_a_string", "messageId must be a string")
        value = str(value)
    if len(value) > max_chars:
        raise ValidationError("messageId", "too_long", f"messageId is longer than {max_chars} characters")
    return value


def _parse_ms(value: object, field_name: str) -> int | None:
    """Epoch ms of an ISO-8601 string; a naive time is UTC; None/"" mean absent."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationError(field_name, "bad_timestamp", f"{field_name} must be an ISO-8601 string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationError(field_name, "bad_timestamp", f"{field_name} is not ISO-8601") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_MS


def _event_time(get: Any, received_ms: int, limits: Limits) -> tuple[int, int | None, int | None]:
    """(timestamp, originalTimestamp, sentAt) in epoch ms, with Segment's clock-skew correction.

    An explicit ``timestamp`` is used as it is (historical imports); otherwise
    ``receivedAt - (sentAt - originalTimestamp)``; otherwise ``originalTimestamp``; otherwise
    ``receivedAt``.
    """
    timestamp = _parse_ms(get("timestamp"), "timestamp")
    original = _parse_ms(get("originalTimestamp"), "originalTimestamp")
    sent = _parse_ms(get("sentAt"), "sentAt")
    if timestamp is not None:
        event_ms, source_field = timestamp, "timestamp"
    elif original is not None:
        event_ms = received_ms - (sent - original) if sent is not None else original
        source_field = "originalTimestamp"
    else:
        return received_ms, original, sent
    if not received_ms - limits.max_age_s * 1000 <= event_ms <= received_ms + limits.max_future_s * 1000:
        raise ValidationError(
            source_field, "timestamp_out_of_range",
            f"{source_field} is older than {limits.max_age_s}s or more than {limits.max_future_s}s ahead",
        )
    return event_ms, original, sent


def _json_text(key: str, value: dict[str, Any] | None, limits: Limits) -> str:
    """``value`` as the record's JSON text; a lone surrogate (the one thing :func:`check_values`
    leaves to this encoder) or other unwritable value raises :class:`ValidationError` naming it."""
    if not value:
        return "{}"
    try:
        return dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        raise bad_value(value, key, limits.max_depth, level=2) from None
