"""Shared fixtures. Integration tests use the real Kafka and Redis of ``deploy/local/stack.py``.

A test under ``tests/integration`` that skips is reported as a failure: a skipped
integration test is not a pass.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


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
