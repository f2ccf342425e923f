"""Durable, atomic file writes: a temporary name, fsync, rename, fsync of the folder.

A reader (or a restart after SIGKILL) sees a file whole or not at all; once ``publish`` returned,
the file and its name survive a power cut.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

COMPRESSION = "zstd"


def fsync(path: Path) -> None:
    """Flush a file, or a folder's entries (what makes a rename durable), to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)




def temporary(path: Path, kind: str) -> Path:
    """The hidden name ``path`` is written under (readers and globs of ``*.parquet`` skip it)."""
    return path.with_name(f".{path.name}.{kind}.tmp")


def write_parquet(table: pa.Table, path: Path) -> int:
    """Write ``table`` as zstd Parquet at ``path`` (a temporary name) and fsync it; its size."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, compression=COMPRESSION)
    fsync(path)
    return path.stat().st_size


def write_arrow(table: pa.Table, path: Path) -> int:
    """Write ``table`` as an Arrow IPC file (the spool: fast to write and to read back); fsynced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    fsync(path)
    return path.stat().st_size


def read_arrow(path: Path) -> pa.Table:
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_file(source).read_all()


def publish(tmp: Path, final: Path, *, sync_dir: bool = True) -> None:
    """Rename a written and fsynced temporary file to its final name (atomic, replaces)."""
    os.replace(tmp, final)
    if sync_dir:
        fsync(final.parent)


def remove_temporaries(folder: Path, kind: str) -> int:
    """Delete temporary files of ``kind`` a crash left under ``folder``; how many."""
    removed = 0
    for path in folder.rglob(f".*.{kind}.tmp"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed
