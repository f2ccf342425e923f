"""CEL translated to DuckDB SQL answers what the CEL runtime answers, row by row."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

import pytest

from analytics.history import base, cel_sql
from connectors.lake.query import connect
from profiles.conditions import EvalError, compile_condition
from profiles.evaluation import safe_context
from profiles.events import EventView
from profiles.rules import load_rules_file
from profiles.rules.reload import DEFAULT_RULES_PATH
from schemas.testing import T0
from tests.unit.analytics.lakes import random_event, write_lake

EXTRA = [  # every construct the translator claims, beyond what the shipped rules use
    'event.path.endsWith("/sso") || event.url.contains("8080")',
    'event.path.matches("(?i)^/FEATURES/[a-z]+$")',
    'event.name == "Pricing"',
    'event.name != "Pricing"',
    "event.name == null",
    'event.event in ["Demo Requested", "Trial Started"]',
    'event.name in ["Home", null]',
    '"features" in event.segments',
    "size(event.path) > 5 && event.path.size() < 12",
    "has(event.properties.revenue) && event.properties.revenue > 100",
    "event.properties.revenue == 2.5 || event.properties.revenue == 1",
    'event.properties.revenue == "3"',
    "event.properties.revenue == null",
    "!has(event.properties.total)",
    "event.properties.total < 0",
    'event.properties.order_id >= "x"',
    "int(event.properties.revenue) >= 2",
    "double(event.properties.total) > 1.0",
    "string(event.properties.revenue)",
    'string(event.properties.order_id) + "-" + event.type',
    "event.properties.revenue",
    "event.properties.total ? 1 : 2",
    "size(event.properties.revenue)",
    "has(event.context.page) && has(event.context.page.path)",
    'event.context.page.title == "T"',
    "has(event.traits.employees) ? int(event.traits.employees) : -1",
    'event.traits.industry in ["software", "finance"]',
    "-double(event.properties.total) < 0.0",
    "event.segments[0]",
    "size(event.segments) == 0 ? event.name : event.segments[0]",
    'dyn(event.type) == "page"',
    'event.traits.title.matches("(?i)(director|cto|总监)")',
    "event.properties.revenue[0] == 1",
    'event.properties["order_id"] == 0',
    "event.title",
    "event.title == 'T' && event.referrer == '' && event.search == ''",
]
UNTRANSLATED = ['event.identifiers.exists(i, i.type == "email")', "profile.score > 3", "event.session != ''",
                "event.timestamp + 1 > 0", "event.timestamp % 2 == 0", "{'a': 1}.a == 1", "b'x' == b'x'",
                "1u == 1u"]


def default_expressions() -> list[str]:
    rules = load_rules_file(DEFAULT_RULES_PATH)
    found = []
    for a in rules.aggregates.values():
        found += [c.source for c in (a.where, a.value) if c]
    for t in rules.tags:
        found += [c.source for c in (t.where, t.name) if c]
    for p in rules.score.behaviour if rules.score else ():
        found += [p.where.source] if p.where else []
    for g in rules.triggers.values():
        found += [c.source for c in (g.where,) if c and not c.needs.reads_profile]
    return sorted(set(found))


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> Any:
    rng = random.Random(7)
    events = [random_event(rng, f"p{i % 9}", T0 + i * 1000) for i in range(600)]
    root = tmp_path_factory.mktemp("lake")
    write_lake(Path(root), events)
    con = connect(Path(root))
    cel_sql.install(con)
    base.build(con, cel_sql.EVENT_COLUMNS, raw=True, skew_ms=300_000, lateness_ms=10**12)
    raw = con.sql(f"SELECT * FROM {base.TABLE} ORDER BY rid").to_arrow_table().to_pylist()
    return con, raw


def runtime(source: str, row: dict[str, Any]) -> Any:
    condition = compile_condition(source)
    event = EventView({c: row[f"r_{c}"] for c in base.RAW}).build(condition.needs.event)
    try:
        return condition(safe_context({"event": event}))
    except EvalError:
        return "error"


def same(sql_value: Any, cel_value: Any, kind: str) -> bool:
    if sql_value is None:
        return cel_value == "error"
    if kind == cel_sql.JSON:
        sql_value = json.loads(sql_value)
    if isinstance(cel_value, float) and isinstance(sql_value, float) and math.isnan(cel_value):
        return math.isnan(sql_value)
    return type(sql_value) is type(cel_value) and sql_value == cel_value


def assert_answers_as_the_runtime(con: Any, raw: list[dict[str, Any]], source: str, done: Any) -> None:
    """The translated expression, run by DuckDB over every row, equals the CEL runtime's answer."""
    assert done is not None, source
    sql, _ = done
    text = cel_sql.json_text(sql) if sql.type == cel_sql.JSON else sql.text
    got = [r[0] for r in con.execute(f"SELECT {text} FROM {base.TABLE} ORDER BY rid").fetchall()]
    wrong = [(row["r_properties"], row["r_context"], g, runtime(source, row))
             for row, g in zip(raw, got, strict=True) if not same(g, runtime(source, row), sql.type)]
    assert not wrong, wrong[:5]


@pytest.mark.parametrize("source", default_expressions() + EXTRA)
def test_translation_answers_as_the_runtime(rows: Any, source: str) -> None:
    con, raw = rows
    assert_answers_as_the_runtime(con, raw, source, cel_sql.translate(source))
    outcomes = {json.dumps(runtime(source, row), default=str) for row in raw}
    assert len(outcomes) > 1, f"{source}: the rows do not tell outcomes apart"


@pytest.mark.parametrize("source", default_expressions())
def test_conditions_filter_exactly_the_rows_that_are_true(rows: Any, source: str) -> None:
    con, raw = rows
    where = cel_sql.condition_sql(source)
    assert where is not None
    kept = {r for (r,) in con.execute(f"SELECT rid FROM {base.TABLE} WHERE {where}").fetchall()}
    assert kept == {row["rid"] for row in raw if runtime(source, row) is True}


@pytest.mark.parametrize("source", UNTRANSLATED)
def test_what_is_not_translated_answers_none(source: str) -> None:
    assert cel_sql.translate(source) is None


def test_doubles_print_as_the_runtime_prints_them(rows: Any) -> None:
    con, _ = rows
    values = [0.1 + 0.2, 1e20, 1.5e-7, 123456.789, 1.0, -0.0, 2.0**60, 1.2345678901234567e25, 5e-324, -7.25]
    condition = compile_condition("string(event.properties.x)")
    for value in values:
        (printed,) = con.execute(f"SELECT h_rust_double(CAST('{value!r}' AS DOUBLE))").fetchall()[0]
        assert printed == condition(safe_context({"event": {"properties": {"x": value}}})), value


@pytest.fixture(scope="module")
def fielded(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The same rows with every top-level JSON key the expressions read extracted into a column
    (``cel_sql.Fields``), as history builds them; the JSON members themselves not stored."""
    rng = random.Random(7)
    events = [random_event(rng, f"p{i % 9}", T0 + i * 1000) for i in range(600)]
    root = tmp_path_factory.mktemp("lake")
    write_lake(Path(root), events)
    con = connect(Path(root))
    cel_sql.install(con)
    fields = cel_sql.Fields()
    translated = {s: cel_sql.translate(s, fields=fields) for s in default_expressions() + EXTRA}
    members = set().union(*(done[1] for done in translated.values() if done is not None))
    assert not members & set(cel_sql.JSON_MEMBERS) and set(fields.keys) == set(cel_sql.JSON_MEMBERS)
    base.build(con, members, raw=True, skew_ms=300_000, lateness_ms=10**12, fields=fields)
    raw = con.sql(f"SELECT * FROM {base.TABLE} ORDER BY rid").to_arrow_table().to_pylist()
    return con, raw, translated


@pytest.mark.parametrize("source", default_expressions() + EXTRA)
def test_keys_read_from_their_own_columns_answer_as_the_runtime(fielded: Any, source: str) -> None:
    con, raw, translated = fielded
    assert_answers_as_the_runtime(con, raw, source, translated[source])
