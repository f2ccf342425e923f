"""Shared fixtures. Integration tests use the real Kafka and Redis of ``deploy/local/stack.py``.

A test under ``tests/integration`` that skips is reported as a failure: a skipped
integration test is not a pass.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from touchstream.pseudonyms import Pseudonyms

ROOT = Path(__file__).resolve().parent.parent

#: The pseudonym secret of graphs and importers a test builds itself (processes the integration
#: tests start read the stack's own secret, like every deployment: apps.factory.pseudonyms).
TEST_SECRET = b"unit-test-pseudonym-secret-0123456789abcdef"
TEST_PSEUDONYMS = Pseudonyms(TEST_SECRET.decode())


def oneid_for(type_: str, value: str, pseudonyms: Pseudonyms = TEST_PSEUDONYMS) -> str:
    """The OneID an identifier creates when no other profile holds that id (graph_lib.lua new_id)."""
    return "o_" + hashlib.sha1(pseudonyms.of(type_, value).encode()).hexdigest()[:16]


def load_stack_module() -> ModuleType:
    """deploy/local/stack.py is a script (stdlib only), not a package: load it by path."""
    spec = importlib.util.spec_from_file_location("touchstream_local_stack", ROOT / "deploy/local/stack.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    outcome = yield
    report = outcome.get_result()
    if report.skipped and "tests/integration" in item.nodeid.replace("\\", "/"):
        report.outcome = "failed"
        report.longrepr = f"integration test skipped, which counts as a failure: {report.longrepr}"
