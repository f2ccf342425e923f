from schemas.codec import EVENT, default_registry
from schemas.vocabulary import EVENT_TYPE_ORDER, EVENT_TYPES
from tests.unit.schemas.conftest import SAMPLES


def test_event_types_are_the_schema_enum_without_the_reader_default() -> None:
    assert EVENT_TYPE_ORDER == ("identify", "track", "page", "screen", "group", "alias")
    assert "unknown" not in EVENT_TYPES


def test_every_event_type_round_trips_through_the_codec() -> None:
    registry = default_registry()
    for type_ in EVENT_TYPE_ORDER:
        _, record = registry.decode(registry.encode(EVENT, {**SAMPLES["Event"], "type": type_}))
        assert record["type"] == type_
