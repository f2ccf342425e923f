"""History equals the stream: the engine's own state for the same events, field by field.

The engine (``profiles.engine``) applied per person in offset order is what the profile stage
stores; verify over the lake of the same events must find no difference, for the shipped rules
and for rules that need the CEL runtime over rows and the tag replay.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from analytics.history.verify import verify
from connectors.lake.query import connect
from profiles.rules import load_rules_file
from profiles.rules.model import Rules
from profiles.rules.reload import DEFAULT_RULES_PATH
from schemas.testing import T0
from tests.unit.analytics.lakes import random_stream, write_lake
from tests.unit.analytics.oracle import EngineStates

D = 86_400_000
ODD_RULES = Path(__file__).with_name("odd_rules.yaml")


def check(tmp_path: Path, rules: Rules, seed: int) -> None:
    events = random_stream(seed, 1500, 60, T0, 60 * D)
    oracle = EngineStates(rules, events)
    assert oracle.engine.result.skipped_late > 0  # the stream has late events worth skipping
    write_lake(tmp_path, events)
    for as_of in (T0 + 20 * D, T0 + 60 * D, T0 + 80 * D):
        report = verify(connect(tmp_path), rules, oracle.read, as_of)
        assert report.profiles == len(oracle.states)
        assert report.differences == [], report.render_table()
    lives = oracle.read(sorted(oracle.states), T0 + 60 * D)
    assert len({p["score"] for p in lives if p}) > 10 and len({p["tier"] for p in lives if p}) > 1
    assert any(p["tags"] for p in lives if p) and not all(p["tags"] for p in lives if p)


@pytest.mark.parametrize("seed", [1, 2])
def test_the_shipped_rules(tmp_path: Path, seed: int) -> None:
    check(tmp_path, load_rules_file(DEFAULT_RULES_PATH), seed)


@pytest.mark.parametrize("seed", [3])
def test_rules_evaluated_over_rows_and_replayed_tags(tmp_path: Path, seed: int) -> None:
    rules = load_rules_file(ODD_RULES)
    check(tmp_path, rules, seed)
    report = verify(connect(tmp_path), rules, EngineStates(rules, []).read, T0)
    assert set(report.unchecked) == {"tags.after_big"}  # reads profile.tags: listed, not passed
    assert 'event.identifiers.exists(i, i.type == "anonymous_id")' in report.evaluated


def test_tags_in_sql_equal_the_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from analytics.history import as_of_event
    from analytics.history.state import History

    rules = load_rules_file(ODD_RULES)
    write_lake(tmp_path, random_stream(5, 1500, 40, T0, 40 * D))
    needs = [t.when.needs.profile for t in rules.tags if t.when is not None and t.when.needs.profile]
    history = History(connect(tmp_path), rules)
    assert any(as_of_event.applies(rules, n, history.plans) for n in needs)  # "scored" goes by SQL
    in_sql = sorted(history.tag_expiries(T0 + 30 * D))
    monkeypatch.setattr(as_of_event, "applies", lambda *_: False)
    replayed = sorted(History(connect(tmp_path), rules).tag_expiries(T0 + 30 * D))
    assert in_sql == replayed and any(tag == "scored" for _, tag, _ in in_sql)


ODD_JSON = ["not json", "[1, 2]", "null", '  {"path": "/pricing/x", "revenue": 12}', "",
            '\t\n{"url": "https://a.cn/features/sso"}', '{"path": null, "url": null}', '{"path": 5}',
            '{"revenue": "12.5", "order_id": 7}', '{"a": 1,}', '{"revenue": 1e999}', '{"x": "\\ud800"}',
            '{"page": {"path": "/pricing/ctx"}}', '{"page": "x"}', '{"pa\\u0067e": {"path": "/pricing/esc"}}',
            ' {"page": {"url": "https://c.cn/features/ab"}}', '{"employees": 900, "industry": "software"}']


def test_malformed_json_members_read_as_the_engine_reads_them(tmp_path: Path) -> None:
    """Properties, context and traits that are not JSON objects (or not JSON) are ``{}`` to the
    engine; a page's path comes from the properties, else from context.page, else from a URL."""
    import random

    from schemas.testing import event_record

    rng = random.Random(17)
    events = random_stream(9, 600, 15, T0, 20 * D)
    for i in range(400):  # in time order: few are late
        kind = rng.choice(["page", "page", "track", "identify"])
        odd = {member: rng.choice(ODD_JSON) for member in ("properties", "context", "traits")}
        events.insert(rng.randrange(len(events)), event_record(
            kind, T0 + i * 3_600_000, oneid=f"p{rng.randrange(15)}", event="Order Completed", **odd))
    oracle = EngineStates(load_rules_file(DEFAULT_RULES_PATH), events)
    write_lake(tmp_path, events)
    report = verify(connect(tmp_path), load_rules_file(DEFAULT_RULES_PATH), oracle.read, T0 + 20 * D)
    assert report.profiles == len(oracle.states) and report.differences == [], report.render_table()
    lives = [p for p in oracle.read(sorted(oracle.states), T0 + 20 * D) if p]
    assert any(p["aggregates"]["pricing_views_30d"] for p in lives)  # some read their path from context
