"""Debian's real Prometheus: the config and rules load, it scrapes the running collector and
worker, and every alert expression evaluates against what they export."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import free_port, wait_http

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: `make test` installs Debian's prometheus (make prometheus)"
    return path


def _api(base: str, path: str, **params: str) -> dict:
    url = f"{base}/api/v1/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.loads(response.read())
    assert answer["status"] == "success", answer
    return answer["data"]


def test_promtool_accepts_the_shipped_rules_and_config(tmp_path):
    promtool = _tool("promtool")
    rules = subprocess.run([promtool, "check", "rules", str(DEPLOY / "alerts.yml")],
                           capture_output=True, text=True)
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["rule_files"] = [str(DEPLOY / "alerts.yml")]  # the compose file mounts it at /etc/prometheus
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yml")],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.fixture
def prometheus(tmp_path, collector, worker):  # type: ignore[no-untyped-def]
    """A real Prometheus scraping this run's collector and worker every second."""
    ops = f"{worker.settings.http_host}:{worker.settings.worker_web_port}"
    wait_http(f"http://{ops}/healthz", proc=worker.proc)
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(DEPLOY / "alerts.yml")],
        "scrape_configs": [
            {"job_name": "touchstream-collector",
             "static_configs": [{"targets": [collector.split("//")[1]]}]},
            {"job_name": "touchstream-worker", "static_configs": [{"targets": [ops]}]},
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115  (closed below)
    proc = subprocess.Popen([_tool("prometheus"), f"--config.file={tmp_path / 'prometheus.yml'}",
                             f"--storage.tsdb.path={tmp_path / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(base + "/-/ready", proc=proc, timeout=60)
        yield base
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def test_prometheus_scrapes_the_services_and_every_alert_evaluates(prometheus):
    deadline = time.monotonic() + 60
    while True:
        targets = _api(prometheus, "targets")["activeTargets"]
        if len(targets) == 2 and all(t["health"] == "up" for t in targets):
            break
        assert time.monotonic() < deadline, [(t["scrapeUrl"], t["health"], t["lastError"]) for t in targets]
        time.sleep(1)
    while True:
        groups = _api(prometheus, "rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        evaluated = [r for r in rules if r.get("health") == "ok" and r.get("lastEvaluation", "")[:1] == "2"]
        if rules and len(evaluated) == len(rules):
            break
        assert time.monotonic() < deadline, [(r["name"], r.get("health"), r.get("lastError")) for r in rules]
        time.sleep(1)
    shipped = yaml.safe_load((DEPLOY / "alerts.yml").read_text())["groups"]
    assert {r["name"] for r in rules} == {r["alert"] for g in shipped for r in g["rules"]}
    for rule in rules:  # each expression evaluates on the live series
        _api(prometheus, "query", query=rule["query"])
    # the worker's loops are really there: the series the stuck-loop alert watches has every stage
    stages = {s["metric"]["stage"] for s in _api(
        prometheus, "query", query="touchstream_stage_last_poll_timestamp_seconds")["result"]}
    assert {"resolve", "profile"} <= stages
