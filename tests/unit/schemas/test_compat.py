"""The contract guard: these fail when a schema change would break existing readers or writers."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema

from schemas.codec import SCHEMA_DIR, SchemaRegistry, default_registry
from schemas.compat import _dynamic, check_compatible, check_registry
from tests.unit.schemas.conftest import record_schema


def _event() -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / "event.avsc").read_text())


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def test_shipped_schemas_are_fully_compatible_with_their_history() -> None:
    assert check_registry(default_registry()) == []


def test_every_shipped_schema_is_pinned_in_history() -> None:
    registry = default_registry()
    for name in registry.names:
        pinned = registry.history(name)
        assert pinned, name
        assert pinned[0].version == "v1"


def test_a_schema_is_compatible_with_itself() -> None:
    assert check_compatible(_event(), _event()) == []


def test_new_field_without_default_breaks_old_data() -> None:
    new = _event()
    new["fields"].append({"name": "consent", "type": "boolean"})
    problems = check_compatible(_event(), new)
    assert problems == [
        "io.touchstream.Event.consent: reader field missing from the writer has no default "
        "(added without a default, or removed while readers still need it)"
    ]
    new["fields"][-1]["default"] = False
    assert check_compatible(_event(), new) == []
    assert check_compatible(new, _event()) == []


def test_removing_a_required_field_breaks_old_readers() -> None:
    new = _event()
    new["fields"].remove(_field(new, "source"))
    assert check_compatible(_event(), new) == []  # new readers ignore it
    assert any("Event.source" in p for p in check_compatible(new, _event()))  # old readers need it


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda s: _field(s, "source").update(type="long"), "Event.source: type changed from string to long"),
        (lambda s: _field(s, "timestamp").update(type="int"), "Event.timestamp: type changed from long to"),
        (
            lambda s: (_field(s, "user_id").update(type="string"), _field(s, "user_id").pop("default")),
            "Event.user_id: writer may write null",
        ),
        (
            lambda s: _field(s, "identifiers")["type"]["items"]["fields"][1].update(type="bytes")
            or _field(s, "identifiers")["type"]["items"]["fields"].append({"name": "w", "type": "int"}),
            "Event.identifiers[].w",
        ),
        (lambda s: s.update(name="Happening"), "from io.touchstream.Event to io.touchstream.Happening"),
    ],
)
def test_type_changes_are_reported(change: Callable[[dict[str, Any]], Any], where: str) -> None:
    new = _event()
    change(new)
    problems = check_compatible(_event(), new)
    assert any(where in p for p in problems), problems


def test_promotions_are_one_way() -> None:
    old = record_schema("N", [{"name": "n", "type": "int"}])
    new = record_schema("N", [{"name": "n", "type": "long"}])
    assert check_compatible(old, new) == []
    assert check_compatible(new, old) == ["io.touchstream.N.n: type changed from long to int"]


def test_enum_symbols_need_the_default_symbol_to_evolve() -> None:
    new = _event()
    _field(new, "type")["type"]["symbols"].insert(0, "batch")
    assert check_compatible(new, _event()) == []  # old readers map 'batch' to 'unknown'
    without_default = copy.deepcopy(_event())
    _field(without_default, "type")["type"].pop("default")
    problems = check_compatible(new, without_default)
    assert problems and "lost symbols ['batch']" in problems[0]


def test_unparseable_schema_is_a_problem_not_a_crash() -> None:
    problems = check_compatible(_event(), {"type": "record", "name": "X", "fields": [{"name": "a"}]})
    assert problems and problems[0].startswith("reader schema does not parse")


def test_dynamic_check_reads_generated_records_through_fastavro() -> None:
    # A nullable field becoming required only fails on records where it is null: the generated
    # samples include nulls, so fastavro itself proves the break the static walk names.
    old = parse_schema(record_schema("M", [{"name": "x", "type": ["null", "string"], "default": None}]))
    new = parse_schema(record_schema("M", [{"name": "x", "type": "string"}]))
    problems = _dynamic(old, new, 60)
    assert problems and "SchemaResolutionError" in problems[0]
    assert _dynamic(new, old, 60) == []
    assert check_compatible(new, old) == []


def test_check_registry_reports_a_breaking_current_schema(make_registry: Callable[..., Path]) -> None:
    v1 = record_schema("Thing", [{"name": "id", "type": "string"}])
    breaking = record_schema("Thing", [{"name": "id", "type": "string"}, {"name": "n", "type": "int"}])
    registry = SchemaRegistry(make_registry({"thing": breaking}, {"thing": {"v1": v1}}))
    problems = check_registry(registry)
    assert len(problems) == 1
    assert problems[0].startswith("Thing: data of v1 unreadable by current (backward): ")
    assert "io.touchstream.Thing.n: reader field missing from the writer has no default" in problems[0]


def test_check_registry_reports_forward_breaks(make_registry: Callable[..., Path]) -> None:
    v1 = record_schema("Thing", [{"name": "id", "type": "string"}, {"name": "n", "type": "int"}])
    current = record_schema("Thing", [{"name": "id", "type": "string"}])
    problems = check_registry(SchemaRegistry(make_registry({"thing": current}, {"thing": {"v1": v1}})))
    assert len(problems) == 1 and "current data unreadable by v1 readers (forward)" in problems[0]


def test_check_registry_house_rules(make_registry: Callable[..., Path]) -> None:
    ident = {"type": "record", "name": "Identifier", "fields": [{"name": "type", "type": "string"}]}
    other_ident = {**ident, "fields": [{"name": "type", "type": "string"}, {"name": "v", "type": "string"}]}
    a = record_schema("A", [{"name": "ids", "type": {"type": "array", "items": ident}, "default": []}])
    b = record_schema("B", [{"name": "ids", "type": {"type": "array", "items": other_ident}, "default": []},
                            {"name": "opt", "type": ["string", "null"], "default": "x"}])
    c = {"type": "record", "name": "C", "namespace": "com.elsewhere", "fields": []}
    problems = check_registry(SchemaRegistry(make_registry({"a": a, "b": b, "c": c}, {"a": {"v1": a}})))
    assert "B: no pinned history; copy b.avsc to history/b/v1.avsc" in problems
    assert "io.touchstream.Identifier is defined differently in a.avsc and b.avsc" in problems
    assert any(p.startswith("B: io.touchstream.B.opt is optional") for p in problems)
    assert "C: record com.elsewhere.C is not in namespace io.touchstream" in problems
    assert not any(p.startswith("A:") for p in problems)
