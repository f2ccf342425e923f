"""Durations in the rules file ("180s", "7d") as milliseconds: rules speak event time in ms."""

from __future__ import annotations

import re

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")

SECOND_MS = _UNITS_MS["s"]
HOUR_MS = _UNITS_MS["h"]
DAY_MS = _UNITS_MS["d"]
WEEK_MS = _UNITS_MS["w"]
MAX_DURATION_MS = 100 * 365 * DAY_MS


def parse_duration(value: object) -> int:
    """``"90d"`` -> ms; a bare number is seconds. Raises ValueError naming the bad value."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if not value >= 0:  # also NaN
            raise ValueError(f"negative duration: {_preview(value)}")
        return _bounded(value * 1000, value)
    if isinstance(value, str) and len(value) <= 64:
        match = _PATTERN.match(value)
        if match:
            return _bounded(float(match.group(1)) * _UNITS_MS[match.group(2)], value)
    raise ValueError(f"not a duration (use e.g. 180s, 30m, 1h, 7d, 1w): {_preview(value)}")


def _bounded(ms: float, value: object) -> int:
    """At most MAX_DURATION_MS: times plus durations stay far inside 64-bit state and JSON."""
    if not ms <= MAX_DURATION_MS:  # also inf
        raise ValueError(f"duration too long (at most 100 years): {_preview(value)}")
    return int(ms)


def _preview(value: object) -> str:
    """A bounded repr for messages (repr of a 5,000-digit int raises)."""
    try:
        text = repr(value)
    except ValueError:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 64 else text[:61] + "..."


def format_duration(ms: int) -> str:
    """The shortest exact spelling of ``ms`` (for messages and reports)."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS_MS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
