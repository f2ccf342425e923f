"""The profile script: built once from the layout constants and one Lua file per command.

Redis names a script by the SHA-1 of its text, so the pieces (``profiles/lua/``) are
concatenated into ONE script (one SHA, one NOSCRIPT path) after the constants generated from
:mod:`profiles.layout`. :func:`run` and :func:`run_many` are the only ways the store calls it:
EVALSHA, and on NOSCRIPT (Redis restarted or flushed its scripts) SCRIPT LOAD and once more.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redis.exceptions import NoScriptError

from profiles import layout

log = logging.getLogger(__name__)

LUA_DIR = Path(__file__).with_name("lua")
PARTS = ("lib", "lib_segments", *layout.COMMANDS, "unknown")  # helpers, one file per command, the fallback


def build() -> str:
    """The script's text: layout constants, then every part in order."""
    pieces = [layout.lua_constants()]
    pieces += [(LUA_DIR / f"{name}.lua").read_text(encoding="utf-8") for name in PARTS]
    return "\n".join(pieces)


SCRIPT = build()
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()  # noqa: S324 (Redis names scripts by SHA-1)


def run(client: Any, command: str, prefix: str, *args: Any) -> Any:
    """One command of the script (``ARGV = command, prefix, *args``), loading it on NOSCRIPT."""
    try:
        return client.evalsha(SCRIPT_SHA, 0, command, prefix, *args)
    except NoScriptError:
        _load(client)
        return client.evalsha(SCRIPT_SHA, 0, command, prefix, *args)


def run_many(client: Any, prefix: str, calls: Sequence[tuple[Any, ...]]) -> list[Any]:
    """Several commands in one round trip (a pipeline, not a transaction: each is its own run)."""

    def send() -> list[Any]:
        pipe = client.pipeline(transaction=False)
        for command, *args in calls:
            pipe.evalsha(SCRIPT_SHA, 0, command, prefix, *args)
        return pipe.execute()

    try:
        return send()
    except NoScriptError:
        _load(client)
        return send()


def _load(client: Any) -> None:
    log.info("profile script not cached by Redis (NOSCRIPT); loading it")
    client.script_load(SCRIPT)
