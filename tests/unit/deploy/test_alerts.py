"""Prometheus alert rules only name metrics the code exports (a rename would silence them)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

import touchstream.metrics  # noqa: F401  (registers every metric)

ALERTS = Path(__file__).resolve().parents[3] / "deploy" / "prometheus" / "alerts.yml"


def _exported() -> set[str]:
    names = set()
    for metric in REGISTRY.collect():
        names.update(sample.name for sample in metric.samples)
        names.add(metric.name)
        if metric.type == "counter":
            names.add(metric.name + "_total")
    return names


def test_every_alert_names_an_exported_metric() -> None:
    rules = [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]
    assert rules
    exported = _exported()
    for rule in rules:
        used = set(re.findall(r"touchstream_[a-z_]+", rule["expr"]))
        assert used, rule["alert"]
        assert used <= exported, (rule["alert"], used - exported)
