"""One complete sample record per schema, and a helper to build throw-away registries."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bench.codec import sample_event

STEMS = {"Event": "event", "DeadLetter": "deadletter", "IdentityMerge": "identity_merge",
         "IdentityRejection": "identity_rejection", "Trigger": "trigger", "SegmentChange": "segment_change"}

SAMPLES: dict[str, dict[str, Any]] = {
    "Event": sample_event(7),
    "DeadLetter": {
        "stage": "resolve",
        "reason": "avro_decode",
        "error": "'event' body ends early",
        "source_topic": "touchstream.events.raw",
        "partition": 3,
        "offset": 123456789012,
        "key": b"\x00key",
        "original": b"\xc3\x01\xff\x00garbage",
        "failed_at": 1_700_000_000_123,
        "attempts": 2,
    },
    "IdentityMerge": {
        "survivor": "oid-1",
        "merged": "oid-2",
        "message_id": "m-1",
        "timestamp": 1_700_000_000_000,
        "identifiers": [{"type": "email", "value": "a@example.com"}, {"type": "crm_id", "value": "c-9"}],
        "reason": "shared_identifier:email",
        "kind": "merge",
    },
    "IdentityRejection": {
        "oneid": "oid-1",
        "type": "phone",
        "value_hash": "ab" * 32,
        "reason": "limit_exceeded",
        "message_id": "m-2",
        "timestamp": 1_700_000_000_001,
    },
    "Trigger": {
        "rule": "high_intent",
        "oneid": "oid-1",
        "idempotency_key": "high_intent:oid-1:1700000000000",
        "event_time": 1_700_000_000_000,
        "fired_at": 1_700_000_000_050,
        "message_id": "m-3",
        "marketing": True,
        "values": json.dumps({"score": 87}),
    },
    "SegmentChange": {
        "type": "segment_exited",
        "segment": "hot_leads",
        "oneid": "oid-2",
        "idempotency_key": "hot_leads:oid-2:7",
        "version": 7,
        "reason": "merged",
        "as_of": 1_700_000_000_000,
        "changed_at": 1_700_000_000_020,
        "message_id": None,
        "survivor": "oid-1",
        "facts": "{}",
    },
}


def record_schema(name: str, fields: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": "io.touchstream", "fields": fields}


@pytest.fixture
def make_registry(tmp_path: Path) -> Callable[..., Path]:
    """Write ``current`` schemas and ``history`` versions into a fresh directory; returns it."""

    def make(current: dict[str, Any], history: dict[str, dict[str, Any]] | None = None) -> Path:
        for name, schema in current.items():
            (tmp_path / f"{name}.avsc").write_text(json.dumps(schema))
        for name, versions in (history or {}).items():
            folder = tmp_path / "history" / name
            folder.mkdir(parents=True, exist_ok=True)
            for version, schema in versions.items():
                (folder / f"{version}.avsc").write_text(json.dumps(schema))
        return tmp_path

    return make
