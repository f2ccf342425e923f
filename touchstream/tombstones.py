"""Erased OneIDs: the one Redis hash the identity graph, the profile store and the sinks all read.

An erasure writes a tombstone for the person's OneID before it removes anything, and one for
every alias (a OneID merged into it) with the graph's deletion; a tombstone is never removed:

    <prefix>{oneid}:e    hash    erased OneID -> "<erased at, ms>|<survivor OneID>"

- ``identity/graph.lua`` never issues a tombstoned OneID again (a person re-created from the same
  identifiers gets a new, different one);
- ``profiles/lua/`` refuses to create state under a tombstoned OneID (an event already stamped
  with it, a merge record in flight) and reports the refusal;
- the lake sink drops rows naming one when it rolls, ``deadletter replay`` skips dead letters
  carrying one, the webhook sink does not deliver their triggers.

The key sits under the identity graph's hash tag (``{oneid}``) so that ``graph.lua`` stays legal
on a Redis Cluster; the profile scripts already touch keys of many slots. It is named here, on the
ground floor, because ``identity`` and ``profiles`` know nothing of each other.
"""

from __future__ import annotations

#: The key after the prefix (the graph's base is ``<prefix>{oneid}:``).
SUFFIX = "{oneid}:e"
SEPARATOR = "|"


def key(prefix: str) -> str:
    """The tombstone hash of the Redis keys under ``prefix``."""
    return f"{prefix}{SUFFIX}"


def value(erased_at_ms: int, survivor: str) -> str:
    return f"{int(erased_at_ms)}{SEPARATOR}{survivor}"


def parse(text: str | bytes) -> tuple[int, str]:
    """A tombstone's (erased at ms, survivor OneID)."""
    raw = text.decode() if isinstance(text, bytes) else text
    at, _, survivor = raw.partition(SEPARATOR)
    return int(at or 0), survivor
