"""Erasure reaches the lake: a person's rows leave every Parquet file, atomically, names unchanged.

Whose rows (``Person``: OneIDs and ``type:pseudonym`` identifier hashes, from the erasure record):
the person's OneIDs plus every OneID the ``identities`` view maps to one of them (a profile the
lake saw merged into the person), then, per table (``events`` as its view attributes them: an
event an operator's unmerge moved to the person goes, one it moved away from them stays),

    events, triggers     oneid in them
    merges               survivor or merged in them (the rows that carry raw identifiers)
    segments             oneid or survivor in them
    rejections           oneid in them, or type:value_hash one of the person's identifier hashes
    profiles snapshot    oneid in them

How (:func:`erase_person`): each file's key columns are read (column projection, not the file);
a file holding such rows is rewritten without them whole under the *same* name (``location.py``:
temporary name, fsync and rename in a folder; one upload replacing the object in a bucket), so
its offset range keeps telling the sink what the lake holds and a reader sees the old file or
the new one, whole. A file left without rows stays, empty. Every
other row keeps its values (rows are filtered, never re-encoded by hand).

With a running sink (``locks.py``, in the sink's spool: for a lake at a URL, erase where the sink
runs): the erasure holds ``.files.lock`` while it rewrites, which
every roll and compaction merge also take, so no file is published behind its back. Spool
segments belong to the sink: the erasure rewrites them only when it can take the sink's lock
(no sink running); otherwise the sink filters every roll through the tombstones
(:class:`RollFilter`, tombstones read after the roll took the files lock), so the segments'
rows of an erased person never reach a file; records still on Kafka are filtered the same way
when they roll.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from connectors.lake import files, layout, locks
from connectors.lake.exceptions import LakeError
from connectors.lake.location import LakeLocation
from connectors.lake.query import RAW_EVENTS, connect, run_query
from connectors.lake.rows import TABLES
from streams.erased_letters import Person
from touchstream import metrics

log = logging.getLogger(__name__)

ERASE_TMP = "erase"
SNAPSHOT_TABLE = "profiles"

#: The columns that name a person, per table.
ONEID_COLUMNS = {"events": ("oneid",), "triggers": ("oneid",), "merges": ("survivor", "merged"),
                 "rejections": ("oneid",), "segments": ("oneid", "survivor"), SNAPSHOT_TABLE: ("oneid",)}
HASH_COLUMNS = {"rejections": ("type", "value_hash")}


@dataclass
class LakeErasure:
    """What an erasure did to the lake (counts only: the report and audit hold no PII)."""

    oneids: int = 0  # OneIDs erased, with those the identities view maps to the person
    files_rewritten: int = 0
    rows_removed: dict[str, int] = field(default_factory=dict)
    segments_rewritten: int = 0
    spool: str = "clean"  # "rewritten", "clean", or "deferred" (a running sink filters its rolls)
    skipped: str = ""  # why nothing was done (no lake folder)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"oneids": self.oneids, "files_rewritten": self.files_rewritten,
                                  "rows_removed": dict(sorted(self.rows_removed.items())),
                                  "segments_rewritten": self.segments_rewritten, "spool": self.spool}
        if self.skipped:
            out["skipped"] = self.skipped
        return out


@dataclass(frozen=True)
class Moved:
    """Events an operator's unmerge re-attributed (``source<US>message_id`` keys): ``into`` the
    person though stamped with another OneID, ``out_of`` the person though stamped with theirs."""

    into: frozenset[str] = frozenset()
    out_of: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.into or self.out_of)


NOTHING_MOVED = Moved()
KEY_COLUMNS = ("source", "message_id")


def _is_in(column: pa.ChunkedArray | pa.Array, values: frozenset[str]) -> pa.Array:
    return pc.fill_null(pc.is_in(column, value_set=pa.array(sorted(values), pa.string())), False)


def erased_mask(table: str, rows: pa.Table, person: Person, moved: Moved = NOTHING_MOVED) -> pa.Array:
    """True for each row of ``table`` that belongs to ``person``."""
    mask = pa.repeat(pa.scalar(False), rows.num_rows)
    if person.oneids:
        for name in ONEID_COLUMNS.get(table, ()):
            if name in rows.column_names:
                mask = pc.or_(mask, _is_in(rows.column(name), person.oneids))
    hashed = HASH_COLUMNS.get(table)
    if person.hashes and hashed and all(name in rows.column_names for name in hashed):
        joined = pc.binary_join_element_wise(rows.column(hashed[0]), rows.column(hashed[1]), ":")
        mask = pc.or_(mask, _is_in(joined, person.hashes))
    if table == "events" and moved and all(name in rows.column_names for name in KEY_COLUMNS):
        keys = pc.binary_join_element_wise(rows.column("source"), rows.column("message_id"), "\x1f")
        mask = pc.or_(pc.and_(mask, pc.invert(_is_in(keys, moved.out_of))), _is_in(keys, moved.into))
    return mask


def without(table: str, rows: pa.Table, person: Person,
            moved: Moved = NOTHING_MOVED) -> tuple[pa.Table, int]:
    """``rows`` without the person's, and how many went."""
    if not person or rows.num_rows == 0:
        return rows, 0
    mask = erased_mask(table, rows, person, moved)
    removed = pc.sum(mask).as_py() or 0
    if not removed:
        return rows, 0
    return rows.filter(pc.invert(mask)), int(removed)


class RollFilter:
    """What the sink applies to every roll: rows of everyone erased (tombstoned OneIDs, suppressed
    identifier hashes) are left out. ``load`` reads them (Redis) at each roll, after the roll took
    the files lock: one round trip per roll, nothing cached that an erasure could outrun."""

    def __init__(self, load: Callable[[], Person]) -> None:
        self._load = load

    def __call__(self, table: str, rows: pa.Table) -> pa.Table:
        kept, removed = without(table, rows, self._load())
        if removed:
            metrics.LAKE_ERASED_ROWS.labels(table, "roll").inc(removed)
            log.info("lake: %s row(s) of erased people left out of a %s roll", removed, table)
        return kept


# events whose attributed OneID (the view's, after unmerges) and stamped OneID disagree about the
# person: the lake's own constant names only
_MOVED = f"""
SELECT e.source || chr(31) || e.message_id AS key,
       coalesce(e.oneid IN (SELECT oneid FROM _erased), false) AS into
FROM events e JOIN (SELECT DISTINCT source, message_id, oneid FROM {RAW_EVENTS}) r USING (source, message_id)
WHERE coalesce(e.oneid IN (SELECT oneid FROM _erased), false)
   <> coalesce(r.oneid IN (SELECT oneid FROM _erased), false)
"""  # noqa: S608


def _with_merged(lake: LakeLocation, person: Person) -> tuple[Person, Moved]:
    """The person plus every OneID the lake's ``identities`` view maps to one of theirs, and the
    events an unmerge moved to or away from them."""
    if not person.oneids:
        return person, NOTHING_MOVED
    con = connect(lake)
    try:
        con.register("_erased", pa.table({"oneid": sorted(person.oneids)}))
        found = run_query(con, "SELECT oneid FROM identities WHERE survivor IN (SELECT oneid FROM _erased)")
        person = Person(person.oneids | {str(o) for o in found.column(0).to_pylist() if o}, person.hashes,
                        person.pseudonyms)
        con.unregister("_erased")
        con.register("_erased", pa.table({"oneid": sorted(person.oneids)}))
        rows = run_query(con, _MOVED).to_pylist()
    finally:
        con.close()
    return person, Moved(frozenset(r["key"] for r in rows if r["into"]),
                         frozenset(r["key"] for r in rows if not r["into"]))


def _rewrite_file(lake: LakeLocation, path: str, table: str, person: Person,
                  moved: Moved = NOTHING_MOVED) -> int:
    """Rewrite one lake file without the person's rows, whole under the same name (``location.py``:
    a rename in a folder, one upload to an object store); rows removed. Only the key columns are
    read to find out whether the file holds any."""
    columns = [*ONEID_COLUMNS.get(table, ()), *HASH_COLUMNS.get(table, ()), *(KEY_COLUMNS if moved else ())]
    present = [c for c in columns if c in lake.column_names(path)]
    if not int(pc.sum(erased_mask(table, lake.read_parquet(path, present), person, moved)).as_py() or 0):
        return 0
    kept, removed = without(table, lake.read_parquet(path), person, moved)
    lake.write_parquet(kept, path, ERASE_TMP)
    return removed


def _rewrite_segment(path: Path, table: str, person: Person) -> int:
    """Rewrite one spool segment without the person's rows (temporary name, fsync, rename)."""
    kept, removed = without(table, files.read_arrow(path), person)
    if removed:
        tmp = files.temporary(path, ERASE_TMP)
        files.write_arrow(kept, tmp)
        files.publish(tmp, path)
    return removed


def _erase_spool(spool: Path, person: Person, done: LakeErasure) -> None:
    """Rewrite the spool's segments (only while holding the sink's lock: no sink is running)."""
    if not spool.exists():
        return
    for folder in sorted(spool.iterdir()):
        parsed = layout.parse_spool_dir_name(folder.name)
        spec = next((s for s in TABLES if parsed and parsed[0].endswith("." + s.topic_suffix)), None)
        if spec is None or not folder.is_dir():
            continue
        files.remove_temporaries(folder, ERASE_TMP)
        for segment in sorted(folder.glob("*.arrow")):
            removed = _rewrite_segment(segment, spec.name, person)
            if removed:
                done.segments_rewritten += 1
                done.rows_removed[spec.name] = done.rows_removed.get(spec.name, 0) + removed


def erase_person(root: Path | str | LakeLocation, person: Person, *, spool: Path | None = None,
                 lock_timeout_s: float = 120.0) -> LakeErasure:
    """Remove ``person``'s rows from every file of the lake at ``root`` (a folder or a URL) and from
    the sink's ``spool`` (default: a lake folder's ``_spool``; required for a lake at a URL: the
    locks are there); see the module docstring. Idempotent: a second run finds nothing.
    :class:`~connectors.lake.exceptions.LakeError` when the files lock stays held past
    ``lock_timeout_s`` (the caller retries later)."""
    lake = root if isinstance(root, LakeLocation) else LakeLocation.open(root)
    if spool is None:
        if lake.folder is None:
            raise LakeError(f"erasing from {lake} needs its sink's spool folder "
                            "(TOUCHSTREAM_LAKE_SPOOL_PATH)")
        spool = lake.folder / layout.SPOOL
    done = LakeErasure()
    snapshot = lake.join(layout.PROFILES, layout.SNAPSHOT)
    if not spool.exists() and not any(lake.table_files(spec.name) for spec in TABLES) \
            and not lake.exists(snapshot):
        done.skipped = f"no lake at {lake}"
        return done
    with locks.held(spool, locks.FILES_LOCK, timeout_s=lock_timeout_s):
        person, moved = _with_merged(lake, person)
        done.oneids = len(person.oneids)
        for spec in TABLES:
            for leftover in lake.temporaries(spec.name, ERASE_TMP):
                lake.delete(leftover)
            for f in lake.table_files(spec.name):
                removed = _rewrite_file(lake, f.path, spec.name, person, moved)
                if removed:
                    done.files_rewritten += 1
                    done.rows_removed[spec.name] = done.rows_removed.get(spec.name, 0) + removed
        if lake.exists(snapshot):
            removed = _rewrite_file(lake, snapshot, SNAPSHOT_TABLE, person)
            if removed:
                done.files_rewritten += 1
                done.rows_removed[SNAPSHOT_TABLE] = removed
        with locks.try_held(spool, locks.SINK_LOCK) as free:
            if free:
                _erase_spool(spool, person, done)
                done.spool = "rewritten" if done.segments_rewritten else "clean"
            else:
                done.spool = "deferred"
    for table, count in done.rows_removed.items():
        metrics.LAKE_ERASED_ROWS.labels(table, "erasure").inc(count)
    log.info("lake erasure: %s file(s) and %s segment(s) rewritten, %s row(s) removed; spool %s",
             done.files_rewritten, done.segments_rewritten, sum(done.rows_removed.values()), done.spool)
    return done
