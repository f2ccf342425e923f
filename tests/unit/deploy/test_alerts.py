"""Prometheus alert rules only name metrics the code exports (a rename would silence them)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.unit.deploy.conftest import exported as metrics_exported

ALERTS = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "alerts.yml"


def test_every_alert_names_an_exported_metric() -> None:
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    assert rules
    exported = metrics_exported()
    for rule in rules:
        used = set(re.findall(r"touchstream_[a-z_]+", rule["expr"]))
        assert used, rule["alert"]
        assert used <= exported, (rule["alert"], used - exported)
