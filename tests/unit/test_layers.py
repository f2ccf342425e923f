"""The layout tells the path of an event, so no package imports one above it.

Floors, bottom up: the ground every layer shares (``touchstream``: settings, errors, metrics,
keys; then ``schemas``), the domain (``identity`` and ``profiles``, which know nothing of each
other), the stage runtime (``streams``), sources and sinks (``connectors``), questions answered
from the lake (``analytics``), and the processes with their wiring (``apps``). ``bench/`` sits
outside the wheel and may import anything; nothing in the wheel imports it (the CLI's bench
command loads it by name, from a checkout).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLOORS = {"touchstream": 0, "schemas": 1, "identity": 2, "profiles": 2, "streams": 3, "connectors": 4,
          "analytics": 5, "apps": 6}


def imported_packages(path: Path) -> set[str]:
    """Top-level names imported anywhere in the module (function-level imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def violations() -> list[str]:
    found = []
    for package, floor in FLOORS.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in imported_packages(path):
                if name == "bench" or (name in FLOORS and name != package and FLOORS[name] >= floor):
                    found.append(f"{path.relative_to(ROOT)} imports {name}")
    return found


def test_no_package_imports_a_package_above_or_beside_it() -> None:
    assert violations() == []


def test_the_check_sees_function_level_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from apps import factory\n    import streams.topics\n")
    assert imported_packages(module) == {"apps", "streams"}
