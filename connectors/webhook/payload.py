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
    parse twice. Text that is not JSON, or JSON no receiver can read (NaN, Infinity, a lone
    surrogate), raises :class:`PayloadError` (the trigger is dead-lettered).
    """
    try:
        values = json.loads(trigger["values"], parse_constant=_refuse_constant)
        body = {name: trigger[name] for name in FIELDS}
        body["values"] = values
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        return text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        raise PayloadError(f"values is not JSON text a receiver can read ({type(exc).__name__})") from None


def _refuse_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")
