"""Compaction: merge a folder's small files of one topic partition into one, rows unchanged.

Only *adjacent* small files (in offset order, among all files of that topic partition in that
``event_date`` folder) are merged, so the merged file's range covers exactly its inputs; the
output is named by that range and written whole under it (``location.py``: a temporary name,
fsync and rename in a folder; one upload to an object store, which makes an object visible only
complete). From then on, readers ignore the inputs (they are covered: ``layout.live``), so the
swap is atomic on any filesystem; the inputs are then deleted, and any a crash left are deleted
by the next compaction. Partitions with a roll in progress (a manifest in the spool) are left
alone. Each merge holds the lake's files lock (in the spool, ``locks.py``), so an erasure
rewriting an input cannot be undone by the merge; the lock and the manifests are the sink's spool
on this machine: compact a lake at a URL where its sink runs (same ``TOUCHSTREAM_LAKE_SPOOL_PATH``).
"""

from __future__ import annotations

import logging
import posixpath
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from connectors.lake import layout, locks
from connectors.lake.exceptions import LakeError
from connectors.lake.layout import Span
from connectors.lake.location import LakeFile, LakeLocation
from connectors.lake.rows import TABLES

log = logging.getLogger(__name__)

COMPACT_TMP = "compact"


@dataclass
class Compacted:
    """What one compaction did."""

    merged: int = 0  # input files replaced
    written: int = 0  # output files
    rows: int = 0
    removed: int = 0  # covered leftovers of an earlier, interrupted compaction

    def render(self) -> str:
        return (f"{self.merged} small file(s) merged into {self.written}, {self.rows} row(s); "
                f"{self.removed} leftover(s) removed")


def small_runs(files_: list[LakeFile], small_bytes: int, min_files: int) -> list[list[LakeFile]]:
    """Runs of adjacent small files (same folder, topic and partition) worth merging."""
    groups: dict[tuple[str, str, int], list[LakeFile]] = defaultdict(list)
    for f in files_:
        groups[(posixpath.dirname(f.path), f.span.topic, f.span.partition)].append(f)
    runs: list[list[LakeFile]] = []
    for group in groups.values():
        run: list[LakeFile] = []
        for f in sorted(group, key=lambda item: item.span):
            if f.size < small_bytes:
                run.append(f)
                continue
            if len(run) >= min_files:
                runs.append(run)
            run = []
        if len(run) >= min_files:
            runs.append(run)
    return runs


def _rolling(spool: Path) -> set[tuple[str, int]]:
    """Topic partitions whose roll a crash interrupted (the sink redoes it under the same names)."""
    busy: set[tuple[str, int]] = set()
    for manifest in spool.glob(f"*/{layout.ROLL_MANIFEST}"):
        parsed = layout.parse_spool_dir_name(manifest.parent.name)
        if parsed is not None:
            busy.add(parsed)
    return busy


def compact(root: Path | str | LakeLocation, *, small_bytes: int, min_files: int = 2,
            table: str | None = None, spool: Path | None = None) -> Compacted:
    """Merge runs of at least ``min_files`` adjacent files under ``small_bytes`` in every folder
    of the lake at ``root`` (a folder or a URL); partitions with a roll manifest in ``spool``
    (default: a lake folder's ``_spool``; required for a lake at a URL) are left alone."""
    lake = root if isinstance(root, LakeLocation) else LakeLocation.open(root)
    if spool is None:
        if lake.folder is None:
            raise LakeError(f"compacting {lake} needs its sink's spool folder (TOUCHSTREAM_LAKE_SPOOL_PATH)")
        spool = lake.folder / layout.SPOOL
    done = Compacted()
    busy = _rolling(spool)
    for spec in TABLES:
        if table is not None and spec.name != table:
            continue
        for path in lake.temporaries(spec.name, COMPACT_TMP):
            lake.delete(path)
        everything = lake.table_files(spec.name)
        for path in layout.covered((f.path, f.span) for f in everything):
            lake.delete(path)
            done.removed += 1
        live = {path for path, _ in layout.live((f.path, f.span) for f in everything)}
        candidates = [f for f in everything
                      if f.path in live and (f.span.topic, f.span.partition) not in busy]
        for run in small_runs(candidates, small_bytes, min_files):
            with locks.held(spool, locks.FILES_LOCK, shared=True):  # no erasure rewrites an input meanwhile
                if not all(lake.exists(f.path) for f in run):
                    continue
                done.rows += _merge(lake, run)
            done.merged += len(run)
            done.written += 1
    log.info("lake compact: %s", done.render())
    return done


def _merge(lake: LakeLocation, run: list[LakeFile]) -> int:
    first, last = run[0].span, run[-1].span
    span = Span(first.topic, first.partition, first.first, last.last)
    folder = posixpath.dirname(run[0].path)
    table = pa.concat_tables([lake.read_parquet(f.path) for f in run], promote_options="default")
    lake.write_parquet(table, posixpath.join(folder, span.file_name), COMPACT_TMP)
    for f in run:  # the inputs are covered from here on: readers skip them
        lake.delete(f.path)
    lake.sync(folder)
    return table.num_rows
