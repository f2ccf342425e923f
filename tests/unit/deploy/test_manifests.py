"""The Kubernetes manifests, the Grafana dashboard and the alerts only name what the code has:
settings it reads, commands it runs, ports it serves probes on, metrics it exports."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import click
import yaml

from apps.cli import cli
from tests.unit.deploy.conftest import exported
from touchstream.settings import ENV_PREFIX, Settings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
#: metrics a dashboard panel reads from other exporters, named here on purpose
EXTERNAL = {"redis_memory_used_bytes"}


def manifests() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def deployments() -> list[dict]:
    return [doc for doc in manifests() if doc["kind"] == "Deployment"]


def test_every_dashboard_query_names_exported_metrics() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "touchstream.json").read_text())
    queries = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert len(dashboard["panels"]) >= 10
    known = exported() | EXTERNAL
    for query in queries:
        used = set(re.findall(r"\b(?:touchstream|redis)_[a-z_]+\b", query))
        assert used and used <= known, (query, used - known)


def test_the_collector_worker_and_sinks_have_probes_on_a_port_they_serve() -> None:
    names = {d["metadata"]["name"] for d in deployments()}
    assert {"touchstream-collector", "touchstream-worker", "touchstream-webhook-sink"} <= names
    for deployment in deployments():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        [container] = pod["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["readinessProbe"]["httpGet"]["port"] in ports
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert int(annotations["prometheus.io/port"]) in ports.values()


def test_the_public_service_exposes_only_the_collectors_http_port() -> None:
    [collector] = [d for d in deployments() if d["metadata"]["name"] == "touchstream-collector"]
    [container] = collector["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["ops"] == int(env["TOUCHSTREAM_HTTP_OPS_PORT"]) != ports["http"]
    annotations = collector["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == ports["ops"]  # scraped in-cluster, not via the Service
    [service] = [d for d in manifests()
                 if d["kind"] == "Service" and d["metadata"]["name"] == "touchstream-collector"]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]


def test_manifests_run_real_commands_with_real_settings() -> None:
    settings = {ENV_PREFIX + f.name.upper() for f in fields(Settings)}
    config = next(d for d in manifests() if d["kind"] == "ConfigMap")
    assert set(config["data"]) <= settings
    for deployment in deployments():
        [container] = deployment["spec"]["template"]["spec"]["containers"]
        assert {e["name"] for e in container.get("env", [])} <= settings
        command = container["command"]
        assert command[0] == "touchstream"
        group: click.Command = cli
        for word in command[1:]:
            if word.startswith("-") or not isinstance(group, click.Group):
                break
            assert word in group.commands, command
            group = group.commands[word]
