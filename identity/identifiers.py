"""The one normaliser of identifiers, shared by the edge (validation, importers) and lookups.

Identity only works if ``"Person1@Example.com "`` at the collector and ``person1@example.com``
in a lookup are the same key, so every place that turns a raw value into an identifier calls
:func:`normalise` here and nowhere else.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, cast

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from touchstream.errors import ValidationError
from touchstream.text import NAME, is_utf8

CORE_TYPES: tuple[str, ...] = ("user_id", "anonymous_id", "email", "phone", "device_id")
DEFAULT_CUSTOM_TYPES: tuple[str, ...] = ("wechat_openid", "wechat_unionid", "crm_id")
_CORE_SET = frozenset(CORE_TYPES)
#: What a custom identifier type name may look like (also the rule for unknown externalIds types).
TYPE_NAME = NAME  # what an identifier type may be called
MAX_VALUE_CHARS = 256
#: Invalid values are kept on the record for inspection; cap them so a junk value stays small.
MAX_INVALID_VALUE_CHARS = 512

#: Stable reason codes of :class:`InvalidIdentifier`.
IDENTIFIER_REASONS: tuple[str, ...] = (
    "empty", "too_long", "not_a_string", "not_utf8", "email_syntax", "phone_invalid", "unknown_type",
)

# Segment's context.externalIds[].type spellings that mean one of our core types.
_EXTERNAL_ALIASES: dict[str, str] = {
    "email": "email",
    "phone": "phone",
    "phone_number": "phone",
    "user_id": "user_id",
    "userid": "user_id",
    "anonymous_id": "anonymous_id",
    "anonymousid": "anonymous_id",
    "device_id": "device_id",
    "deviceid": "device_id",
}
_E164 = phonenumbers.PhoneNumberFormat.E164
_CACHE_SIZE = 65536


class InvalidIdentifier(ValidationError):
    """A value that cannot be an identifier of ``type_``; ``reason`` is a stable short code.

    The message never contains the value: identifiers are PII.
    """

    def __init__(self, type_: str, reason: str) -> None:
        self.type_ = type_
        super().__init__(type_, reason, f"invalid {type_} identifier: {reason}")


def known_types(custom_types: Iterable[str] = DEFAULT_CUSTOM_TYPES) -> frozenset[str]:
    """Core types plus the configured custom ones: what a lookup endpoint should accept."""
    return frozenset(CORE_TYPES) | frozenset(custom_types)


def normalise(type_: str, value: object, *, default_region: str = "CN") -> str:
    """The canonical string of ``value`` as an identifier of ``type_``, or :class:`InvalidIdentifier`.

    email: email-validator syntax check and normalisation, whole address lower-cased;
    phone: a valid number in E.164 (numbers without ``+country`` read in ``default_region``);
    anything else: a string (numbers are stringified), stripped, 1..256 characters.
    """
    if type_ in _EXPENSIVE and (type(value) is str or type(value) is int):
        # Only email and phone cost enough (~20 µs) to cache; caching cheap ids would only evict them.
        normalised, reason = _normalise_cached(type_, value, default_region)
    else:
        normalised, reason = _normalise(type_, value, default_region)
    if reason is not None:
        raise InvalidIdentifier(type_, reason)
    assert normalised is not None
    return normalised


_EXPENSIVE = frozenset({"email", "phone"})


@lru_cache(maxsize=_CACHE_SIZE)
def _normalise_cached(type_: str, value: str | int, region: str) -> tuple[str | None, str | None]:
    # Caches failures too (as a reason), so a hot junk value is as cheap as a hot good one.
    return _normalise(type_, value, region)


def _normalise(type_: str, value: object, region: str) -> tuple[str | None, str | None]:
    if type_ not in _CORE_SET and not TYPE_NAME.match(type_):
        return None, "unknown_type"
    if _is_huge_int(value):
        return None, "too_long"
    text = _as_text(value)
    if text is None:
        return None, "not_a_string"
    text = text.strip()
    if not text:
        return None, "empty"
    if not is_utf8(text):
        return None, "not_utf8"
    if type_ == "email":
        return _email(text)
    if type_ == "phone":
        return _phone(text, region)
    if len(text) > MAX_VALUE_CHARS:
        return None, "too_long"
    return text, None


def _is_huge_int(value: object) -> bool:
    """An int with more digits than an identifier may have: str() of it costs quadratic time
    and raises past 4,300 digits, so it is measured in bits instead."""
    # 851 bits > 256 decimal digits; the exact cut is made by the length check on the text.
    return type(value) is int and value.bit_length() > 851


def _as_text(value: object) -> str | None:
    """Strings as they are, numbers as their shortest exact text; everything else is not an id."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def _email(text: str) -> tuple[str | None, str | None]:
    if len(text) > MAX_VALUE_CHARS:
        return None, "too_long"
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return None, "email_syntax"
    out = checked.normalized.lower()
    if len(out) > MAX_VALUE_CHARS:  # lower() lengthens text ("İ" becomes two characters)
        return None, "too_long"
    return out, None


def _phone(text: str, region: str) -> tuple[str | None, str | None]:
    if len(text) > 64:  # far beyond any dialable number; do not hand phonenumbers a novel
        return None, "too_long"
    try:
        number = phonenumbers.parse(text, region.upper())
    except phonenumbers.NumberParseException:
        return None, "phone_invalid"
    if not phonenumbers.is_valid_number(number):
        return None, "phone_invalid"
    return phonenumbers.format_number(number, _E164), None


def warm_up(default_region: str = "CN") -> None:
    """Load phonenumbers' metadata for the region now (it is kept in-process), not on the first event."""
    example = phonenumbers.example_number(default_region.upper())
    if example is not None:
        phonenumbers.format_number(example, _E164)
        phonenumbers.is_valid_number(example)


def cache_info() -> Any:
    """Hit/miss figures of the normaliser's cache (for metrics and benchmarks)."""
    return _normalise_cached.cache_info()


def _shown(value: object, limit: int = MAX_INVALID_VALUE_CHARS) -> str:
    """A bounded, valid UTF-8 text form of a rejected value, kept on the record for inspection
    (the record is Avro: a lone surrogate or an unprintable value must not crash its encoder)."""
    if isinstance(value, str):
        text = value[:limit]
    elif _is_huge_int(value):
        text = f"<int of {cast(int, value).bit_length()} bits>"
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
    else:
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
        except (RecursionError, ValueError, TypeError):  # nested too deep, huge ints inside
            text = f"<{type(value).__name__}>"
    text = text[:limit]
    if not is_utf8(text):
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def external_type(raw: object, custom_types: Iterable[str]) -> str | None:
    """Our type name for a Segment ``context.externalIds[].type``; None when it cannot be one."""
    if not isinstance(raw, str):
        return None
    name = raw.strip().lower()
    core = _EXTERNAL_ALIASES.get(name)
    if core is not None:
        return core
    if name in custom_types or TYPE_NAME.match(name):
        return name
    return None


class _Collector:
    """Accumulates (type, value) pairs in first-seen order without duplicates."""

    __slots__ = ("bad_seen", "invalid", "region", "seen", "valid")

    def __init__(self, region: str) -> None:
        self.region = region
        self.valid: list[dict[str, str]] = []
        self.invalid: list[dict[str, str]] = []
        self.seen: set[tuple[str, str]] = set()
        self.bad_seen: set[tuple[str, str, str]] = set()

    def add(self, type_: str, value: object) -> None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return  # absent: SDKs send "" or null for "unknown"; that is not a bad identifier
        try:
            normalised = normalise(type_, value, default_region=self.region)
        except InvalidIdentifier as exc:
            shown = _shown(value)
            key = (type_, shown, exc.reason)
            if key not in self.bad_seen:
                self.bad_seen.add(key)
                self.invalid.append({"type": type_, "value": shown, "reason": exc.reason})
            return
        pair = (type_, normalised)
        if pair not in self.seen:
            self.seen.add(pair)
            self.valid.append({"type": type_, "value": normalised})


def extract_identifiers(
    message: Mapping[str, Any],
    *,
    custom_types: tuple[str, ...] = DEFAULT_CUSTOM_TYPES,
    default_region: str = "CN",
    message_type: str | None = None,
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(valid ``[{type, value}]``, invalid ``[{type, value, reason}]``) found in a Segment message.

    Sources: ``userId``, ``anonymousId``, ``traits`` and ``context.traits`` (``email``, ``phone``
    and keys named like a custom type), ``context.device.id`` and ``context.externalIds``.
    A group call's top-level ``traits`` describe the group, not the person, so they are skipped.
    Invalid values are reported, never raised; both lists are deduplicated. ``message_type``
    overrides ``message["type"]`` (an endpoint such as ``/v1/group`` implies the type).
    """
    out = _Collector(default_region)
    out.add("user_id", message.get("userId"))
    out.add("anonymous_id", message.get("anonymousId"))

    context = message.get("context")
    if not isinstance(context, Mapping):
        context = {}
    trait_sources = [context.get("traits")]
    if (message_type or message.get("type")) != "group":
        trait_sources.insert(0, message.get("traits"))
    for traits in trait_sources:
        if not isinstance(traits, Mapping) or not traits:
            continue
        if "email" in traits:
            out.add("email", traits["email"])
        if "phone" in traits:
            out.add("phone", traits["phone"])
        for custom in custom_types:
            if custom in traits:
                out.add(custom, traits[custom])

    device = context.get("device")
    if isinstance(device, Mapping):
        out.add("device_id", device.get("id"))

    external = context.get("externalIds")
    if isinstance(external, list):
        for item in external:
            if not isinstance(item, Mapping):
                continue
            type_ = external_type(item.get("type"), custom_types)
            if type_ is None:
                raw_type = item.get("type")
                shown_type = _shown(raw_type, 40) if isinstance(raw_type, str) else "unknown"
                value = item.get("id")
                if value is not None:
                    key = (shown_type, _shown(value), "unknown_type")
                    if key not in out.bad_seen:
                        out.bad_seen.add(key)
                        out.invalid.append({"type": shown_type, "value": key[1], "reason": "unknown_type"})
                continue
            out.add(type_, item.get("id"))
    return out.valid, out.invalid
