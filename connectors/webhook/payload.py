"""The JSON body POSTed for one trigger: built once, sent (and signed) for every endpoint."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from connectors.webhook.exceptions import PayloadError

FIELDS = ("rule", "oneid", "idempotency_key", "event_time", "fired_at", "message_id", "marketing")


def build_body(trigger: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON of the trigger with ``values`` parsed into an object.

    ``values`` travels as JSON text on Kafka; receivers get it as JSON, not as a string to
    parse twice. Text that is not JSON raises :class:`PayloadError` (the trigger is dead-lettered).
    """
    try:
        values = json.loads(trigger["values"])
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"values is not JSON text ({type(exc).__name__})") from None
    body = {name: trigger[name] for name in FIELDS}
    body["values"] = values
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
