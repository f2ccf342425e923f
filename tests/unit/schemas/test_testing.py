from schemas.codec import EVENT, default_registry
from schemas.testing import anonymous_page, event_record


def test_an_event_record_is_complete_and_encodes() -> None:
    registry = default_registry()
    record = event_record("identify", 5_000, traits={"email": "a@qq.com"})
    _, decoded = registry.decode(registry.encode(EVENT, record))
    assert decoded["traits"] == '{"email": "a@qq.com"}' and decoded["received_at"] == 5_000
    assert decoded["identifiers"] == [] and decoded["oneid"] is None


def test_records_do_not_share_mutable_defaults() -> None:
    first, second = event_record(), event_record()
    first["identifiers"].append({"type": "email", "value": "x@qq.com"})
    assert second["identifiers"] == [] and first["message_id"] != second["message_id"]


def test_an_anonymous_page_carries_its_visitor_as_identifier() -> None:
    page = anonymous_page("a1", "/pricing", 7_000, message_id="p-1")
    assert page["identifiers"] == [{"type": "anonymous_id", "value": "a1"}]
    assert page["name"] == "/pricing" and page["properties"] == '{"path": "/pricing"}'
