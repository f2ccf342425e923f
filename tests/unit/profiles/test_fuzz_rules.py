"""Property test: the rules loader raises only its documented error, whatever the file holds.

A rules file is edited by hand and hot-reloaded into running workers, so a typo must come back
as a :class:`ConfigError` (``RulesError``) naming the problem, never a KeyError/TypeError/
OverflowError from inside the compiler (on a reload that would kill the worker's loop). Three
sources of documents: arbitrary text, arbitrary YAML-ish structures, and the shipped rules with
one or more subtrees replaced by arbitrary values. Each ``@example`` is a case once found.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from profiles.rules import DEFAULT_RULES_PATH, Rules, load_rules, load_rules_file
from touchstream.errors import ConfigError

DEFAULT_TEXT = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
DEFAULT_DOC = yaml.safe_load(DEFAULT_TEXT)
PREVIOUS = load_rules(DEFAULT_TEXT, strict=True)

WORDS = ["version", "options", "aggregates", "tags", "score", "tier", "triggers", "on", "op", "value",
         "where", "if", "kind", "cooldown", "window", "bucket", "id", "above", "delay", "values", "levels",
         "aggregate", "behaviour", "attributes", "points", "cap", "half_life", "name", "ttl", "marketing",
         "inactive_after", "downgrade_steps", "consent_trait", "traits", "max_tags", "trigger_history"]
SCALARS = ["page", "track:Order Completed", "*", "count", "sum", "unique", "event", "dwell", "delayed",
           "score_crossed", "tier_upgrade", "tier_downgrade", "1h", "0s", "-5s", "1e999d", "99999999w",
           "event.path", "profile.score >", 'event.path.startsWith("/p")', "profile.agg.nope > 1",
           "size(event.segments) > 1", "revenue_365d", ".inf", "2001-13-45", "\ud800", ""]

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.sampled_from(SCALARS), st.text(max_size=20)
)
keys = st.one_of(st.sampled_from(WORDS), st.text(max_size=8), st.integers(), st.booleans(), st.none())
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=25,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += paths(value, (*prefix, index))
    return out


DEFAULT_PATHS = paths(DEFAULT_DOC)


def mutated(replacements: list[tuple[int, Any]]) -> Any:
    doc = copy.deepcopy(DEFAULT_DOC)
    for index, value in replacements:
        path = DEFAULT_PATHS[index % len(DEFAULT_PATHS)]
        if not path:
            doc = value
            continue
        node = doc
        for key in path[:-1]:
            if not isinstance(node, dict | list):
                break
            try:
                node = node[key]
            except (KeyError, IndexError, TypeError):
                break
        else:
            last = path[-1]
            fits = isinstance(node, list) and isinstance(last, int) and last < len(node)
            if isinstance(node, dict) or fits:
                node[last] = value
    return doc


def dump(doc: Any) -> str | None:
    try:
        return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, TypeError, ValueError, RecursionError):
        return None  # not representable as YAML: nothing to load


def load_both_ways(text: str) -> None:
    """First load, strict load and hot reload over the shipped rules: Rules or ConfigError only."""
    for kwargs in ({}, {"strict": True}, {"previous": PREVIOUS}):
        try:
            rules = load_rules(text, **kwargs)
        except ConfigError as exc:
            assert str(exc)
            continue
        assert isinstance(rules, Rules)
        rules.candidates("track", "Order Completed")
        rules.candidates("page", None)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=200))
@example(text="a: 2001-13-45")  # found: PyYAML raised ValueError for an impossible date
@example(text="version: " + "1" * 5000)  # found: ValueError, an int longer than Python converts
@example(text="[" * 1100)  # found: RecursionError in the YAML composer
@example(text="a: !!float x")
@example(text="triggers: &a {x: *a}")  # a recursive document
def test_arbitrary_text_loads_or_raises_config_error(text: str) -> None:
    load_both_ways(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=documents)
@example(doc={"aggregates": {"x": {"on": "page", "op": ["count"]}}})  # found: unhashable op, TypeError
@example(doc={"triggers": {"x": {"on": "page", "kind": {"a": 1}}}})  # found: unhashable kind
@example(doc={"tier": {"aggregate": [], "levels": {"A": 1}}})  # found: unhashable aggregate name
@example(doc={"tags": {"x": {"on": "page", 1: "a", "b": "c"}}})  # found: sorting int and str keys
@example(doc={"triggers": {"x": {"on": "page", "cooldown": float("inf")}}})  # found: OverflowError
@example(doc={"triggers": {"x": {"on": "page", "cooldown": float("nan")}}})
@example(doc={"triggers": {"x": {"on": "page", "values": {"a": None}}}})  # found: AssertionError
@example(doc={"score": {"attributes": {"x": {"if": None, "points": 1}}}})  # found: AssertionError
@example(doc={"score": {"behaviour": {"x": {"on": "page", "points": float("inf")}}}})  # a score of inf
@example(doc={"options": {"allowed_lateness": 10**30}})  # far beyond 64-bit state once in ms
def test_arbitrary_documents_load_or_raise_config_error(doc: Any) -> None:
    text = dump(doc)
    if text is not None:
        load_both_ways(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(replacements=st.lists(st.tuples(st.integers(0, 10_000), documents), min_size=1, max_size=3))
def test_the_shipped_rules_with_arbitrary_edits_load_or_raise_config_error(replacements) -> None:
    text = dump(mutated(replacements))
    if text is not None:
        load_both_ways(text)


@pytest.mark.parametrize(
    ("doc", "rule", "reason"),
    [
        ({"aggregates": {"x": {"on": "page", "op": ["count"]}}}, "aggregates.x", "op must be one of"),
        ({"triggers": {"x": {"on": "page", "cooldown": float("inf")}}}, "triggers.x", "too long"),
        ({"triggers": {"x": {"on": "page", "cooldown": "36600d"}}}, "triggers.x", "too long"),
        ({"score": {"behaviour": {"x": {"on": "page", "points": float("nan")}}}},
         "score.behaviour.x", "finite"),
        ({"tags": {"x": {"on": "page", 1: "a"}}}, "tags.x", "unknown key(s) 1"),
        ({"triggers": {"x": {"on": "page", "values": {"a": None}}}}, "triggers.x", "values.a"),
    ],
)
def test_found_cases_are_rejected_by_name_with_a_reason(doc, rule, reason):
    rules = load_rules(yaml.safe_dump(doc))
    assert [(i.rule, reason in i.error) for i in rules.issues] == [(rule, True)]


def test_a_rules_file_that_is_not_utf8_raises_config_error(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_bytes(b"triggers: {x: {on: page}}\n# \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_rules_file(path)
