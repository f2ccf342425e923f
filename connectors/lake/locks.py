"""The lake's two locks (``fcntl.flock`` on files in the sink's spool folder: ``<lake>/_spool``, or
``TOUCHSTREAM_LAKE_SPOOL_PATH`` for a lake at a URL; the kernel drops them with the process, so a
SIGKILL never leaves one behind). They are local locks: for a lake at a URL, compaction and
erasure take them on the machine whose spool the sink uses.

- ``.lock``: one sink per lake, held by ``touchstream lake run`` for its life; whoever
  else holds it (an erasure rewriting the spool) knows no sink is writing segments.
- ``.files.lock``: held by whatever rewrites or publishes lake files: shared by the sink around
  each roll (rolls of several partitions run side by side) and by compaction around each merge,
  exclusive for an erasure while it rewrites files. A roll that began before an erasure is
  therefore published before the erasure reads the files, and one that begins after it reads
  the tombstones the erasure wrote first; a merge never writes back a row the erasure removed.
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from connectors.lake.exceptions import LakeError

SINK_LOCK = ".lock"
FILES_LOCK = ".files.lock"


def lock_path(spool: Path, name: str) -> Path:
    return spool / name


@contextmanager
def held(spool: Path, name: str, *, shared: bool = False, timeout_s: float | None = None) -> Iterator[None]:
    """Hold the lock ``name`` in the lake's ``spool`` folder, exclusive or ``shared``: wait for it (at
    most ``timeout_s``, then :class:`LakeError`; ``None``: as long as it takes)."""
    path = lock_path(spool, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    with open(path, "a") as handle:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if deadline is not None and time.monotonic() >= deadline:
                    raise LakeError(f"{path} stayed locked for {timeout_s:.0f}s") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def try_held(spool: Path, name: str) -> Iterator[bool]:
    """Hold the lock if it is free right now: yields True, or False when someone holds it."""
    path = lock_path(spool, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
