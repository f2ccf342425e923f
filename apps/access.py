"""Subject access: everything held on one person, as one JSON document (PIPL art. 45, GDPR art. 15).

The identity graph gives the identifiers, the profile store the traits, aggregates, tags, score,
tier, consent, segments and the triggers fired; the lake every event, trigger and segment change
kept under any OneID that is (or was merged into) the person's. Reading it is itself a read of
personal data: the API audits it like any other (``touchstream audit reads``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from connectors.lake.location import is_url
from connectors.lake.query import connect
from identity.graph import IdentityGraph
from profiles.store import ProfileStore

#: lake tables whose rows belong to a person through a ``oneid`` column
_PERSONAL_TABLES = ("events", "triggers", "segments")


def _oneids(con: Any, survivor: str) -> list[str]:
    rows = con.execute("SELECT DISTINCT oneid FROM identities WHERE survivor = ? ORDER BY 1",
                       [survivor]).fetchall()
    return sorted({survivor, *(str(r[0]) for r in rows)})


def _lake_rows(root: Path | str, survivor: str) -> tuple[list[str], dict[str, list[dict[str, Any]]]]:
    """The person's OneIDs the lake knows and their rows per table (oldest first)."""
    con = connect(root)
    oneids = _oneids(con, survivor)
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in _PERSONAL_TABLES:
        columns = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
        if "oneid" not in columns:
            continue
        order = "timestamp" if "timestamp" in columns else "1"
        sql = f"SELECT * FROM {table} WHERE oneid IN (SELECT unnest(?)) ORDER BY {order}"  # noqa: S608
        found = con.execute(sql, [oneids]).to_arrow_table()
        tables[table] = found.to_pylist() if found is not None else []
    return oneids, tables


def subject_access(oneid: str, graph: IdentityGraph, store: ProfileStore,
                   lake_root: Path | str | None) -> dict[str, Any] | None:
    """The person behind ``oneid`` (any alias) as a JSON-able document; None if nobody is held.
    ``lake_root``: the lake's folder or URL (``connectors/lake/location.py``)."""
    survivor = graph.resolve_alias(oneid)
    identifiers = graph.profile_identifiers(survivor)
    profile = store.get_profile(survivor)
    lake_oneids: list[str] = [survivor]
    lake: dict[str, list[dict[str, Any]]] = {}
    if lake_root is not None and (is_url(lake_root) or Path(lake_root).exists()):
        lake_oneids, lake = _lake_rows(lake_root, survivor)
    if not identifiers and profile is None and not any(lake.values()):
        return None
    return {
        "oneid": survivor,
        "requested": oneid,
        "exported_at": time.time_ns() // 1_000_000,
        "oneids": lake_oneids,
        "identifiers": identifiers,
        "profile": profile,
        "triggers_fired": store.list_triggers(survivor),
        "lake": lake,
    }
