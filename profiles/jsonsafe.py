"""Client JSON made safe to evaluate and to store: whatever a write key sends, nothing here raises.

Events carry ``properties``/``traits``/``context`` as JSON text the client wrote. Python's
``json`` accepts things that later break the pipeline: ``NaN``/``Infinity``/``1e999`` (non-finite
floats poison sums and are not JSON), escaped lone surrogates (``"\\ud800"``: not UTF-8, so
orjson and Redis clients refuse them), integers too long for ``str`` (over 4,300 digits), and
nesting deep enough to overflow the CEL runtime's native stack (a segfault, not an exception).
:func:`loads_object` parses with non-finite numbers as null and, only when the text can hold
one of the other cases, cleans the value (:func:`clean`). :func:`dumps` is the one writer of
JSON into profile state and trigger payloads: never NaN, never a lone surrogate.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

MAX_DEPTH = 32  # deeper containers become null: no real property nests this far
MAX_INT_BITS = 13_000  # ~3,900 digits: str()/json of longer ints raise (sys.int_info limit 4,300)
SEPARATORS = (",", ":")

_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def fix_text(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD (valid pairs were already joined)."""
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return _SURROGATE.sub("\ufffd", text)


def finite(value: Any) -> bool:
    """A real number usable as an amount: int or finite float, not bool."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value.bit_length() <= 64
    return isinstance(value, float) and math.isfinite(value)


def _float(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def _constant(_text: str) -> None:
    return None  # NaN, Infinity, -Infinity: not numbers


def _int(text: str) -> int | None:
    return int(text) if len(text) < 4000 else None


# built once: json.loads(text, parse_float=...) would build a decoder per call
_DECODER = json.JSONDecoder(parse_float=_float, parse_constant=_constant)
_BOUNDED_INT_DECODER = json.JSONDecoder(parse_float=_float, parse_constant=_constant, parse_int=_int)


def clean(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy: str keys, no lone surrogates, finite floats, bounded ints and depth.

    Values JSON cannot hold become their ``str`` (as ``json.dumps(default=str)`` did), except
    that anything failing even that becomes null.
    """
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return fix_text(value)
    if isinstance(value, int):
        return value if value.bit_length() <= MAX_INT_BITS else None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= MAX_DEPTH:
        return None
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _key(key)
            if name is not None:
                out[name] = clean(item, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [clean(item, depth + 1) for item in value]
    try:
        return fix_text(str(value))
    except Exception:
        return None


def _key(key: Any) -> str | None:
    """An object key as JSON writes it (str; numbers and null as text), else None (dropped)."""
    if isinstance(key, str):
        return fix_text(key)
    if key is None or isinstance(key, bool):
        return json.dumps(key)
    if isinstance(key, int | float):
        cleaned = clean(key)
        return None if cleaned is None else json.dumps(cleaned)
    return None


def _too_deep(value: Any) -> bool:
    """True when containers nest deeper than MAX_DEPTH (iterative: no recursion on hostile input)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= MAX_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _risky(text: str) -> bool:
    """Whether parsed ``text`` may hold a lone surrogate or nest too deep (cheap scans only)."""
    if "\\u" in text and _SURROGATE_ESCAPE.search(text):
        return True
    if not text.isascii() and _SURROGATE.search(text):
        return True
    return text.count("{") + text.count("[") > MAX_DEPTH


def loads(text: str) -> Any:
    """Parse client JSON text; non-finite numbers are null. Raises ValueError if it is not JSON."""
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
    except ValueError:
        try:  # only an int longer than Python converts (4,300 digits) fails here and not above
            return _BOUNDED_INT_DECODER.decode(text)
        except RecursionError:
            raise ValueError("JSON nested too deep") from None


def loads_object(text: Any) -> dict[str, Any]:
    """An event's JSON member as a safe dict; anything unparsable or not an object is ``{}``."""
    if isinstance(text, dict):
        value: Any = clean(text)
    elif isinstance(text, str | bytes | bytearray):
        if isinstance(text, bytes | bytearray):
            text = bytes(text).decode("utf-8", "replace")
        if not text or text == "{}":
            return {}
        try:
            value = loads(text)
        except ValueError:
            return {}
        if not isinstance(value, dict):
            return {}
        if _risky(text) and _needs_clean(value):
            value = clean(value)
    else:
        return {}
    return value if isinstance(value, dict) else {}


def _needs_clean(value: Any) -> bool:
    """Too deep, or a string/key somewhere holds a lone surrogate."""
    if _too_deep(value):
        return True
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if fix_text(item) is not item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def dumps(value: Any, *, sort_keys: bool = False) -> str:
    """Compact JSON for state and trigger payloads: UTF-8 safe, never NaN/Infinity, never raises."""
    try:
        text = _dumps(value, sort_keys)
    except (ValueError, TypeError, RecursionError):
        pass
    else:
        if text.isascii() or not _SURROGATE.search(text):
            return text
    return _dumps(clean(value), sort_keys)


def _dumps(value: Any, sort_keys: bool) -> str:
    return json.dumps(value, ensure_ascii=False, separators=SEPARATORS, allow_nan=False, sort_keys=sort_keys)
