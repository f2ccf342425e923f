"""The public port serves events and the API; metrics and the API description only the internal one."""

import json
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import replace

import pytest

from tests.integration.conftest import free_port, settings_env, wait_http


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture
def split_collector(settings, tmp_path):
    split = replace(settings, http_port=free_port(), http_ops_port=free_port())
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "apps.cli", "serve"], env=settings_env(split),
                                stdout=out, stderr=subprocess.STDOUT)
    public = f"http://{split.http_host}:{split.http_port}"
    internal = f"http://{split.http_ops_host}:{split.http_ops_port}"
    try:
        wait_http(public + "/healthz", proc=proc)
        wait_http(internal + "/healthz", proc=proc)
    except TimeoutError:
        proc.kill()
        pytest.fail("collector did not start:\n" + log.read_text(), pytrace=False)
    yield public, internal
    proc.send_signal(signal.SIGTERM)
    proc.wait(20)


def test_metrics_and_openapi_leave_the_public_port(split_collector):
    public, internal = split_collector
    assert _status(public + "/metrics") == 404
    assert _status(public + "/openapi.json") == 404
    assert _status(public + "/readyz") == 200  # probes still reach the public port
    metrics = urllib.request.urlopen(internal + "/metrics", timeout=10).read().decode()
    assert "# TYPE touchstream_events_received_total counter" in metrics
    spec = json.loads(urllib.request.urlopen(internal + "/openapi.json", timeout=10).read())
    assert spec["openapi"].startswith("3.")
    assert _status(internal + "/v1/batch") in (404, 405)  # no event intake on the internal port
