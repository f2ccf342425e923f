"""The Node SDKs (npm @segment/analytics-node, @rudderstack/rudder-sdk-node), unmodified, deliver to
the collector: a small script in tests/browser/node sends through each; the events land on the raw
topic with their identifiers (RudderStack's gzip body included)."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from tests.browser import harness
from tests.integration.conftest import raw_records

SCRIPT = harness.HERE / "node" / "send.mjs"


def test_segment_and_rudderstack_node_sdks_deliver(collector, settings, write_key):
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: apt-get install -y nodejs npm (make test does)", pytrace=False)
    harness.require_sdks()
    marker = f"node-{uuid.uuid4().hex[:8]}"
    result = subprocess.run([node, str(SCRIPT), collector, write_key, marker], capture_output=True, text=True,
                            timeout=90, cwd=harness.HERE)
    assert result.returncode == 0, result.stdout + result.stderr
    records = {r["message_id"]: r for r in raw_records(settings, marker, expect=4)}
    assert set(records) == {f"{marker}-{sdk}-{call}" for sdk in ("segment", "rudder")
                            for call in ("identify", "track")}, sorted(records)
    for sdk, short in (("segment", "seg"), ("rudder", "rud")):
        identify = records[f"{marker}-{sdk}-identify"]
        identifiers = {(i["type"], i["value"]) for i in identify["identifiers"]}
        assert {("user_id", f"{marker}-{short}"), ("email", f"{marker}-{short}@example.cn")} <= identifiers
        assert records[f"{marker}-{sdk}-track"]["event"] == "Order Completed"
