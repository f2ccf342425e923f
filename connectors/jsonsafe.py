"""JSON values the pipeline can carry: 64-bit integers, finite floats, valid Unicode, bounded depth.

Python reads JSON that Avro, Kafka consumers and revenue aggregates cannot use: lone surrogates
(what JavaScript produces when it slices an emoji), integers of thousands of digits, ``NaN`` and
``Infinity``, nesting thousands deep. :func:`scan` is the cheap check every message gets (one pass
over its containers, strings not looked at: orjson already refused bad ones in HTTP bodies and
:func:`dumps` refuses them everywhere); when a check fails, :func:`find_bad` walks again, slowly,
to name the field and the reason.
"""

from __future__ import annotations

from typing import Any

import orjson

from touchstream.text import is_utf8

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
_DUMPS_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME
_SEGMENT_CHARS = 64
_FIELD_CHARS = 256


class BadNumber:
    """Stands in for a number literal no record can carry (NaN, Infinity, 1e999, 5,000 digits).

    The careful parser puts one where the literal was, so the body still parses and only the
    message holding it is rejected (``bad_number`` naming the field).
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text[:24]

    def __repr__(self) -> str:
        return f"BadNumber({self.text!r})"


def dumps(value: object) -> str:
    """Compact JSON text (non-ASCII kept); raises :class:`orjson.JSONEncodeError` on a value
    :func:`find_bad` names (lone surrogate, integer beyond 64 bits, nesting past 254).

    Keys that are not strings are written as strings and anything else JSON lacks (datetime,
    Decimal, from the importers) as ``str(value)``, as the stdlib encoder with ``default=str`` did.
    """
    return orjson.dumps(value, default=str, option=_DUMPS_OPTIONS).decode()


def dumped_size(value: object) -> int:
    """UTF-8 bytes of :func:`dumps`'s text."""
    return len(orjson.dumps(value, default=str, option=_DUMPS_OPTIONS))


def scan(container: dict | list, max_depth: int) -> bool:
    """True when every number is a 64-bit integer or a finite float and no container nests
    deeper than ``max_depth`` levels (``container`` itself is level 1). Strings are not checked."""
    return _scan(container, max_depth - 1)


def _scan(container: Any, room: int) -> bool:
    items = container.values() if type(container) is dict or isinstance(container, dict) else container
    for item in items:
        kind = type(item)
        if kind is str or item is None or kind is bool:
            continue
        if kind is int:
            if not INT64_MIN <= item <= INT64_MAX:
                return False
        elif kind is float:
            if item - item != 0.0:  # NaN and ±inf give NaN
                return False
        elif kind is dict or kind is list:
            if room <= 0 or not _scan(item, room - 1):
                return False
        elif not _scan_other(item, room):
            return False
    return True


def _scan_other(item: object, room: int) -> bool:
    """Subclasses and other Python values (importers): the same rules, by isinstance."""
    if isinstance(item, BadNumber):
        return False
    if isinstance(item, (dict, list, tuple)):
        return room > 0 and _scan(item, room - 1)
    if isinstance(item, int):  # bool was handled by the caller
        return INT64_MIN <= item <= INT64_MAX
    if isinstance(item, float):
        return item - item == 0.0
    return True


def find_bad(value: object, max_depth: int, field: str = "body", level: int = 1) -> tuple[str, str] | None:
    """(field, reason) of the first value the pipeline cannot carry, depth first; None when none.

    Reasons: ``too_deep`` (a container below ``max_depth`` levels; ``value`` is at ``level``),
    ``bad_number``, ``bad_unicode`` (in a string or an object key). ``field`` names ``value``
    (``properties``, ``body``); children are named ``properties.revenue``, ``items[3]``.
    """
    if isinstance(value, str):
        return None if is_utf8(value) else (field, "bad_unicode")
    if isinstance(value, BadNumber):
        return field, "bad_number"
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return None if INT64_MIN <= value <= INT64_MAX else (field, "bad_number")
    if isinstance(value, float):
        return None if value - value == 0.0 else (field, "bad_number")
    if isinstance(value, (dict, list, tuple)):
        if level > max_depth:
            return field, "too_deep"
        if isinstance(value, dict):
            for key, item in value.items():
                name = child_field(field, key)
                if isinstance(key, str) and not is_utf8(key):
                    return name, "bad_unicode"
                found = find_bad(item, max_depth, name, level + 1)
                if found:
                    return found
        else:
            for index, item in enumerate(value):
                found = find_bad(item, max_depth, f"{field}[{index}]", level + 1)
                if found:
                    return found
    return None


def child_field(parent: str, key: object) -> str:
    """``parent.key`` for a response: the key made printable and cut short, the whole bounded."""
    text = key if isinstance(key, str) else str(key)
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > _SEGMENT_CHARS:
        text = text[:_SEGMENT_CHARS] + "…"
    name = f"{parent}.{text}" if parent else text
    return name if len(name) <= _FIELD_CHARS else "…" + name[-_FIELD_CHARS:]
