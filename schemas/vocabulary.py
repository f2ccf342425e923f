"""Vocabularies the contracts define, read from the schemas so they are written once.

``EVENT_TYPES``: the Segment call types an Event carries, from ``event.avsc``'s ``EventType``
enum (without ``unknown``, which is only what a reader gets for a symbol a newer writer added).
The collector's routes, the edge validator and the profile rules all use this set.
"""

from __future__ import annotations

import json
from pathlib import Path

_EVENT_SCHEMA = Path(__file__).resolve().parent / "event.avsc"
_READER_ONLY = "unknown"


def _event_types() -> tuple[str, ...]:
    schema = json.loads(_EVENT_SCHEMA.read_text())
    [field] = [f for f in schema["fields"] if f["name"] == "type"]
    return tuple(s for s in field["type"]["symbols"] if s != _READER_ONLY)


#: Segment call types in the schema's order: identify, track, page, screen, group, alias.
EVENT_TYPE_ORDER: tuple[str, ...] = _event_types()
EVENT_TYPES: frozenset[str] = frozenset(EVENT_TYPE_ORDER)
