"""Event records for tests, benchmarks and generators, built in one place from the contract.

Every field ``event.avsc`` gives a default starts at that default (read from the schema file, so
a field added there reaches every factory at once); the required ones get test values, and
``received_at`` follows the timestamp unless given (the profile engine files an event no later
than its receipt plus a small skew, so a record received long before its timestamp is filed
under the receipt time).
"""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path
from typing import Any

_EVENT_SCHEMA = Path(__file__).resolve().parent / "event.avsc"
_DEFAULTS: dict[str, Any] = {
    f["name"]: f["default"] for f in json.loads(_EVENT_SCHEMA.read_text())["fields"] if "default" in f
}
_ids = itertools.count()

T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z


def event_record(type_: str = "track", timestamp: int = T0, *, message_id: str | None = None,
                 source: str = "test", **fields: Any) -> dict[str, Any]:
    """A complete Event record of ``type_`` at ``timestamp``; ``fields`` override any field.

    JSON members (``properties``, ``traits``, ``context``, ``integrations``) may be given as dicts:
    they are written as the JSON text the contract carries.
    """
    record = copy.deepcopy(_DEFAULTS)
    record.update(message_id=message_id or f"m-{next(_ids)}", type=type_, timestamp=timestamp,
                  received_at=timestamp, source=source)
    for name, value in fields.items():
        record[name] = json.dumps(value) if isinstance(value, dict) else value
    return record


def anonymous_page(anonymous_id: str, path: str, timestamp: int, *, message_id: str | None = None,
                   **fields: Any) -> dict[str, Any]:
    """A page view by an anonymous visitor: the commonest event of every stream test."""
    return event_record("page", timestamp, message_id=message_id, name=path, anonymous_id=anonymous_id,
                        identifiers=[{"type": "anonymous_id", "value": anonymous_id}],
                        properties={"path": path}, **fields)
