"""The graph's protocol is named once (identity/layout.py): the Lua uses those names, never copies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from identity import layout
from identity.graph import _script_source

SCRIPTS = ("graph_lib.lua", "graph.lua", "graph_admin.lua")
HERE = Path(layout.__file__).parent
NAME = re.compile(r"\b(?:K|F|M|C|R|OP|WHY|E)_[A-Z_]+\b|\b(?:GUARDED|ONEID_PREFIX|LAYOUT_VERSION)\b")


def code(script: str) -> str:
    """The script without its comments."""
    text = (HERE / script).read_text(encoding="utf-8")
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_protocol_name_a_script_uses_is_declared(script):
    used = set(NAME.findall(code(script)))
    assert used <= set(layout.lua_constants())


@pytest.mark.parametrize("script", SCRIPTS)
def test_no_script_spells_a_field_prefix_or_key_by_hand(script):
    text = code(script)
    for literal in ("'!", "'p:'", "'i:'", "'a:'", "'f:'", "'mo'", "'anon'", "'limit:'", "'shared:'"):
        assert literal not in text, literal


def test_the_prelude_is_fixed_text_so_each_script_keeps_one_sha():
    assert layout.lua_prelude() == layout.lua_prelude()
    assert "local F_PERSON = \"!u\"" in layout.lua_prelude()
    for name in ("graph.lua", "graph_admin.lua"):
        assert _script_source(name).startswith(layout.lua_prelude())


def test_python_key_builders_follow_the_layout():
    base = layout.base("ts:")
    assert base == "ts:{oneid}:"
    assert layout.profile_key(base, "o_1") == "ts:{oneid}:p:o_1"
    assert layout.index_key(base, "email", "a@qq.com", 1) == "ts:{oneid}:i:email:0"
    # a guard set is named by 16 hex of the value's pseudonym
    assert layout.guard_key(base, "email", "ab" * 32) == "ts:{oneid}:f:email:" + "ab" * 8
