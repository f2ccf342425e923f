"""Trigger records (shaped like Avro ``io.touchstream.Trigger``), their idempotency keys, consent.

A trigger's idempotency key is ``<rule>:<16 hex>`` of what makes it unique (the messageId of the
event that fired it, the opening page view for a dwell, the crossing event and new tier for an
upgrade). It never contains the OneID, so a replay after a merge yields the same key, and the
profile keeps every key it fired (``k:<hash>`` fields, set only if absent: SET NX semantics)
for ``options.idempotency_ttl``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from profiles import jsonsafe

TRUE_TEXT = frozenset({"true", "yes", "1"})
FALSE_TEXT = frozenset({"false", "no", "0"})


def _digest(text: str, size: int) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=size).hexdigest()


def idempotency_key(rule: str, ref: str) -> str:
    return f"{rule}:{_digest(ref, 8)}"


def key_field(key: str) -> str:
    """The 16-hex name under which a profile remembers a fired key (short: memory per profile)."""
    return _digest(key, 8)


def timer_id(rule: str, ref: str) -> str:
    """Id of a delayed trigger waiting in a profile (one per rule and originating event)."""
    return _digest(f"{rule}|{ref}", 6)


def has_consent(value: Any) -> bool:
    """Marketing consent is opt-in: ``true`` (or "true"/"yes"/"1"/1); missing or anything else is no."""
    return consent_answer(value) is True


def consent_answer(value: Any) -> bool | None:
    """A person's answer for a purpose: yes (true/"true"/"yes"/"1"/1), no (false/"false"/"no"/"0"/0),
    or None when there is no answer (missing, or a value that says neither)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        return True if text in TRUE_TEXT else False if text in FALSE_TEXT else None
    if isinstance(value, int) and value in (0, 1):
        return value == 1
    return None


def build(
    *,
    rule: str,
    oneid: str,
    ref: str,
    event_time: int,
    fired_at: int,
    message_id: str,
    marketing: bool,
    values: dict[str, Any],
) -> dict[str, Any]:
    return {
        "rule": rule,
        "oneid": oneid,
        "idempotency_key": idempotency_key(rule, ref),
        "event_time": int(event_time),
        "fired_at": int(fired_at),
        "message_id": message_id,
        "marketing": marketing,
        "values": _values_text(values),
    }


def _values_text(values: Any) -> str:
    return jsonsafe.dumps(values, sort_keys=True)


def history_entry(trigger: dict[str, Any]) -> str:
    """Compact stored form, one line: the OneID (the owner) and the key's rule prefix are implied,
    and ``values`` is embedded as JSON rather than as an escaped string."""
    head = jsonsafe.dumps(
        [
            trigger["rule"],
            trigger["idempotency_key"].rpartition(":")[2],
            trigger["event_time"],
            trigger["fired_at"],
            trigger["message_id"],
            1 if trigger["marketing"] else 0,
        ]
    )
    return f"{head[:-1]},{trigger['values']}]"


def from_history(oneid: str, text: str) -> dict[str, Any]:
    rule, key, event_time, fired_at, message_id, marketing, values = json.loads(text)
    return {
        "rule": rule,
        "oneid": oneid,
        "idempotency_key": f"{rule}:{key}",
        "event_time": event_time,
        "fired_at": fired_at,
        "message_id": message_id,
        "marketing": bool(marketing),
        "values": _values_text(values),
    }
