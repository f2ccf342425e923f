"""Reading one rule's YAML values: each reader returns a checked value or raises :class:`Reject`.

The compiler and the trigger kinds share them, so every rule speaks the same durations,
numbers, ``on:`` selectors and CEL, and a bad value is reported the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from profiles.conditions import Condition, ConditionError, compile_condition
from profiles.durations import parse_duration
from schemas.vocabulary import EVENT_TYPES

MAX_RULE_NUMBER = 1e12  # points, caps, score thresholds and tier amounts

EventKey = tuple[str, str | None]


class Reject(Exception):
    """One rule is bad (message only; the compiler adds the rule's name)."""


def keys(spec: dict[str, Any], allowed: Iterable[str], required: Iterable[str] = ()) -> None:
    """Refuse unknown keys (a typo must not silently change a rule) and missing required ones."""
    unknown = sorted(map(str, set(spec) - set(allowed)))
    if unknown:
        raise Reject(f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    missing = [k for k in required if spec.get(k) is None]
    if missing:
        raise Reject(f"missing {', '.join(missing)}")


def cel(
    spec: dict[str, Any], key: str, *, profile: bool, known: frozenset[str] | None = None, now: bool = False
) -> Condition | None:
    """A compiled CEL expression (None when absent); ``profile``: it may read the profile;
    ``now``: it may read the clock (segments)."""
    if key not in spec or spec[key] is None:
        return None
    try:
        return compile_condition(spec[key], allow_profile=profile, aggregates=known, allow_now=now)
    except ConditionError as exc:
        raise Reject(f"{key}: {one_line(exc)}") from None


def duration(spec: dict[str, Any], key: str, default: int) -> int:
    """A duration in ms ("180s", "7d"; a bare number is seconds)."""
    if spec.get(key) is None:
        return default
    try:
        return parse_duration(spec[key])
    except ValueError as exc:
        raise Reject(f"{key}: {exc}") from None


def number(spec: dict[str, Any], key: Any) -> float:
    """A finite number of sensible size: points, caps and thresholds feed scores and state."""
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Reject(f"{key} must be a number, got {short(value)}")
    if value != value or abs(value) > MAX_RULE_NUMBER:  # NaN, infinities, absurd sizes
        raise Reject(f"{key} must be a finite number up to {MAX_RULE_NUMBER:g}, got {short(value)}")
    return value


def on(spec: dict[str, Any], *, required: bool = True) -> tuple[EventKey, ...]:
    """The ``on:`` selectors: ``page``, ``track:Order Completed``, ``*``, or a list of them."""
    value = spec.get("on")
    if value is None:
        if required:
            raise Reject("missing on (e.g. page, track:Order Completed, or a list)")
        return ()
    items = value if isinstance(value, list) else [value]
    out: list[EventKey] = []
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise Reject(f"on: not an event selector: {short(item)}")
        kind, _, name = item.partition(":")
        kind = kind.strip()
        if kind != "*" and kind not in EVENT_TYPES:
            raise Reject(
                f"on: unknown event type {short(kind)}; use one of {', '.join(sorted(EVENT_TYPES))} or *"
            )
        out.append((kind, name.strip() or None))
    return tuple(out)


def short(value: Any) -> str:
    """repr of a bad value for a message, bounded (a rules file can hold anything)."""
    try:
        text = repr(value)
    except Exception:  # repr of a huge int raises ValueError; any object's repr may fail
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:77] + "..."


def one_line(exc: object) -> str:
    return " ".join(str(exc).split())


# -- option values (they raise ValueError: an option is reported, not a whole rule) ----------------


def text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"must be a non-empty string, got {short(value)}")
    return value


def text_list(value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    return [text(v) for v in items]


def event_types(value: Any) -> list[str]:
    items = text_list(value)
    bad = [i for i in items if i not in EVENT_TYPES]
    if bad:
        raise ValueError(f"unknown event type(s) {bad}")
    return items


def positive_int(value: Any, limit: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limit:
        raise ValueError(f"must be a whole number from 1 to {limit}, got {short(value)}")
    return value
