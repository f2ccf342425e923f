"""Durations in the rules file ("180s", "7d") as milliseconds: rules speak event time in ms."""

from __future__ import annotations

import re

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")

SECOND_MS = _UNITS_MS["s"]
HOUR_MS = _UNITS_MS["h"]
DAY_MS = _UNITS_MS["d"]
WEEK_MS = _UNITS_MS["w"]


def parse_duration(value: object) -> int:
    """``"90d"`` -> ms; a bare number is seconds. Raises ValueError naming the bad value."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"negative duration: {value!r}")
        return int(value * 1000)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            return int(float(match.group(1)) * _UNITS_MS[match.group(2)])
    raise ValueError(f"not a duration (use e.g. 180s, 30m, 1h, 7d, 1w): {value!r}")


def format_duration(ms: int) -> str:
    """The shortest exact spelling of ``ms`` (for messages and reports)."""
    for unit in ("w", "d", "h", "m", "s"):
        size = _UNITS_MS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
