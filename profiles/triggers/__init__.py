"""Triggers: the records they produce and the kinds of trigger a rules file can declare.

    records.py       the trigger record (Avro ``io.touchstream.Trigger``), idempotency keys,
                     consent, the compact history line
    kinds/<kind>.py  one module per trigger kind: its YAML keys and checks, its event hook and
                     its timer hook (see ``kinds/base.py``; adding a kind is one file there)

The record helpers are re-exported here (``from profiles.triggers import history_entry``).
"""

from __future__ import annotations

from profiles.triggers.records import (
    TRUE_TEXT,
    build,
    from_history,
    has_consent,
    history_entry,
    idempotency_key,
    key_field,
    timer_id,
)

__all__ = [
    "TRUE_TEXT",
    "build",
    "from_history",
    "has_consent",
    "history_entry",
    "idempotency_key",
    "key_field",
    "timer_id",
]
