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
