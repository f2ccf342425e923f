"""connectors.webhook.payload: the POSTed body is strict JSON, or the trigger is dead-lettered."""

from __future__ import annotations

import json

import pytest

from connectors.webhook.exceptions import PayloadError
from connectors.webhook.payload import FIELDS, build_body

TRIGGER = {"rule": "r", "oneid": "o1", "idempotency_key": "k", "event_time": 1, "fired_at": 2,
           "message_id": "m", "marketing": False}


def test_values_travel_as_json_and_the_body_is_compact_utf8() -> None:
    body = build_body({**TRIGGER, "values": '{"revenue": 12.5, "城市": "上海"}'})
    expected = {**{k: TRIGGER[k] for k in FIELDS}, "values": {"revenue": 12.5, "城市": "上海"}}
    assert json.loads(body) == expected
    assert "上海".encode() in body and b": " not in body


@pytest.mark.parametrize("values", ['{"revenue": NaN}', '{"revenue": Infinity}', '[-Infinity]', "not json",
                                    '{"name": "\\ud800"}', "[" * 5000 + "]" * 5000, None])
def test_values_no_receiver_can_read_are_a_payload_error(values: object) -> None:
    with pytest.raises(PayloadError):
        build_body({**TRIGGER, "values": values})
