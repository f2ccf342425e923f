"""Compaction: merge a folder's small files of one topic partition into one, rows unchanged.

Only *adjacent* small files (in offset order, among all files of that topic partition in that
``event_date`` folder) are merged, so the merged file's range covers exactly its inputs; the
output is named by that range, written under a temporary name, fsynced and renamed. From the
rename on, readers ignore the inputs (they are covered: ``layout.live``), so the swap is atomic;
the inputs are then deleted, and any a crash left are deleted by the next compaction.
Partitions with a roll in progress (a manifest in the spool) are left alone. Each merge holds the
lake's files lock (``locks.py``), so an erasure rewriting an input cannot be undone by the merge.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.lake import files, layout, locks
from connectors.lake.layout import Span
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


def small_runs(files_: list[tuple[Path, Span]], small_bytes: int,
               min_files: int) -> list[list[tuple[Path, Span]]]:
    """Runs of adjacent small files (same folder, topic and partition) worth merging."""
    groups: dict[tuple[Path, str, int], list[tuple[Path, Span]]] = defaultdict(list)
    for path, span in files_:
        groups[(path.parent, span.topic, span.partition)].append((path, span))
    runs: list[list[tuple[Path, Span]]] = []
    for group in groups.values():
        run: list[tuple[Path, Span]] = []
        for path, span in sorted(group, key=lambda item: item[1]):
            if path.stat().st_size < small_bytes:
                run.append((path, span))
                continue
            if len(run) >= min_files:
                runs.append(run)
            run = []
        if len(run) >= min_files:
            runs.append(run)
    return runs


def _rolling(root: Path) -> set[tuple[str, int]]:
    """Topic partitions whose roll a crash interrupted (the sink redoes it under the same names)."""
    busy = set()
    for manifest in (root / layout.SPOOL).glob(f"*/{layout.ROLL_MANIFEST}"):
        parsed = layout.parse_spool_dir_name(manifest.parent.name)
        if parsed is not None:
            busy.add(parsed)
    return busy


def compact(root: Path, *, small_bytes: int, min_files: int = 2, table: str | None = None) -> Compacted:
    """Merge runs of at least ``min_files`` adjacent files under ``small_bytes`` in every folder."""
    done = Compacted()
    busy = _rolling(root)
    for spec in TABLES:
        if table is not None and spec.name != table:
            continue
        files.remove_temporaries(root / spec.name, COMPACT_TMP)
        everything = layout.table_files(root, spec.name)
        for path in layout.covered(everything):
            path.unlink(missing_ok=True)
            done.removed += 1
        candidates = [(p, s) for p, s in layout.live(everything) if (s.topic, s.partition) not in busy]
        for run in small_runs(candidates, small_bytes, min_files):
            with locks.held(root, locks.FILES_LOCK, shared=True):  # no erasure rewrites an input meanwhile
                if not all(path.exists() for path, _ in run):
                    continue
                done.rows += _merge(run)
            done.merged += len(run)
            done.written += 1
    log.info("lake compact: %s", done.render())
    return done


def _merge(run: list[tuple[Path, Span]]) -> int:
    first, last = run[0][1], run[-1][1]
    span = Span(first.topic, first.partition, first.first, last.last)
    final = run[0][0].parent / span.file_name
    tmp = files.temporary(final, COMPACT_TMP)
    table = pa.concat_tables([pq.ParquetFile(path).read() for path, _ in run], promote_options="default")
    files.write_parquet(table, tmp)
    files.publish(tmp, final)  # the inputs are covered from here on: readers skip them
    for path, _ in run:
        path.unlink(missing_ok=True)
    files.fsync(final.parent)
    return table.num_rows
