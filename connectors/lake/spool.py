"""One topic partition's rows between Kafka and a Parquet file: durable segments, then a roll.

The sink's loop commits offsets after every batch, but a lake file should hold up to 128 MB or a
minute of rows. So each batch is first made durable as a *segment* (an Arrow IPC file named by
its offset range, written under a temporary name, fsynced, renamed) before the loop commits; a
*roll* turns the partition's segments into one Parquet file per event date, all named by the
rolled offset range, then deletes the segments.

A roll is made atomic by a manifest: the manifest (the files' final paths) is published in the
spool, each Parquet file is written to the lake whole under its final name (``location.py``: a
temporary name and a rename on the local disk, an upload on an object store), the segments are
deleted, the manifest deleted. On restart (:meth:`PartitionSpool.recover`): a manifest whose
files all exist only needs its segments deleted; otherwise the roll is done again from the
segments, which are all still there, under the same names (a rename or an upload replaces).
``next_offset`` is the offset after the last one in a segment or a lake file, and the sink skips
records below it: a batch replayed after SIGKILL lands exactly once.

The spool is always a local folder (``spool_root``): segments need fsync and an atomic rename
before the offsets are committed, which object stores do not offer; the lake may be anywhere.

A roll holds the lake's files lock (in the spool, ``locks.py``; shared: rolls run side by side; an
erasure waits) and passes its rows through ``keep`` (the sink's filter of erased people,
``erase.py``) before writing them.
"""

from __future__ import annotations

import json
import logging
import posixpath
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from connectors.lake import files, layout, locks
from connectors.lake.layout import Span
from connectors.lake.location import LakeLocation
from connectors.lake.rows import RowCodec

log = logging.getLogger(__name__)

SEGMENT_TMP = "segment"
ROLL_TMP = "roll"


@dataclass
class Written:
    """What a roll wrote: Parquet files, their bytes and rows."""

    files: int = 0
    bytes: int = 0
    rows: int = 0
    paths: list[str] = field(default_factory=list)


class PartitionSpool:
    """The segments of one topic partition under ``<spool_root>/<topic>+<partition>/``, rolled
    into the ``lake``."""

    def __init__(self, lake: LakeLocation, spool_root: Path, codec: RowCodec, topic: str,
                 partition: int, keep: Callable[[str, pa.Table], pa.Table] | None = None) -> None:
        self.lake = lake
        self.spool_root = spool_root
        self.codec = codec
        self.keep = keep
        self.topic = topic
        self.partition = partition
        self.folder = spool_root / layout.spool_dir_name(topic, partition)
        self.segments: list[Span] = []
        self.bytes = 0  # Arrow bytes in the segments: what a roll is sized by
        self.rows = 0
        self.started_at: float | None = None  # wall clock of the oldest segment
        self.next_offset = 0

    # -- restart ---------------------------------------------------------------------------------

    def recover(self, lake_ends: dict[int, int] | None = None) -> Written:
        """Finish or redo a roll a crash interrupted; load the segments; find ``next_offset``
        (``lake_ends``: the lake's ``next_offsets`` of this table and topic, when listed already)."""
        written = Written()
        held = 0  # the offset after the spool's last segment, rolled below or not
        if self.folder.exists():
            files.remove_temporaries(self.folder, SEGMENT_TMP)
            self._load_segments()
            held = self.segments[-1].last + 1 if self.segments else 0
            manifest = self.folder / layout.ROLL_MANIFEST
            if manifest.exists():
                paths = [self.lake.join(p) for p in json.loads(manifest.read_text())["files"]]
                if all(self.lake.exists(p) for p in paths):
                    self._forget_segments()
                else:
                    log.info("lake: redoing an interrupted roll of %s/%s", self.topic, self.partition)
                    written = self.roll()
                manifest.unlink(missing_ok=True)
            self.rows = sum(files.read_arrow(self.folder / s.segment_name).num_rows for s in self.segments)
        if lake_ends is None:
            lake_ends = self.lake.next_offsets(self.codec.spec.name, self.topic)
        self.next_offset = max(lake_ends.get(self.partition, 0), held)
        return written

    def _load_segments(self) -> None:
        self.segments, self.bytes, self.rows = [], 0, 0
        for path in sorted(self.folder.glob("*.arrow")):
            span = layout.parse_segment_name(self.topic, self.partition, path.name)
            if span is None:
                continue
            self.segments.append(span)
            self.bytes += path.stat().st_size
            self.started_at = min(self.started_at or time.time(), path.stat().st_mtime)

    # -- appending -------------------------------------------------------------------------------

    def append(self, table: pa.Table) -> None:
        """Make a batch's rows durable as one segment (before the loop commits its offsets)."""
        if table.num_rows == 0:
            return
        offsets = table.column("_offset")
        span = Span(self.topic, self.partition, pc.min(offsets).as_py(), pc.max(offsets).as_py())
        final = self.folder / span.segment_name
        tmp = files.temporary(final, SEGMENT_TMP)
        self.bytes += files.write_arrow(table, tmp)
        files.publish(tmp, final)
        self.segments.append(span)
        self.rows += table.num_rows
        self.next_offset = span.last + 1
        if self.started_at is None:
            self.started_at = time.time()

    def age_s(self, now: float) -> float:
        return 0.0 if self.started_at is None else now - self.started_at

    # -- rolling ---------------------------------------------------------------------------------

    def roll(self) -> Written:
        """Write the segments' rows as Parquet, one file per event date, then delete the segments."""
        if not self.segments:
            return Written()
        with locks.held(self.spool_root, locks.FILES_LOCK, shared=True):
            return self._roll()

    def _roll(self) -> Written:
        written = Written()
        tables = [files.read_arrow(self.folder / s.segment_name) for s in self.segments]
        rows = pa.concat_tables(tables, promote_options="default")
        if self.keep is not None:
            rows = self.keep(self.codec.spec.name, rows)
        span = Span(self.topic, self.partition, self.segments[0].first, self.segments[-1].last)
        parts = [(posixpath.join(self.lake.date_dir(self.codec.spec.name, day), span.file_name), part)
                 for day, part in self.codec.by_date(rows)]
        manifest = self.folder / layout.ROLL_MANIFEST
        manifest_tmp = files.temporary(manifest, SEGMENT_TMP)
        manifest_tmp.write_text(json.dumps({"files": [self.lake.relative(final) for final, _ in parts]}))
        files.fsync(manifest_tmp)
        files.publish(manifest_tmp, manifest)  # the commit point: from here on, redo or finish
        for final, part in parts:
            written.bytes += self.lake.write_parquet(part, final, ROLL_TMP)
            written.rows += part.num_rows
            written.paths.append(final)
        written.files = len(parts)
        self._forget_segments()
        manifest.unlink()
        files.fsync(self.folder)
        return written

    def _forget_segments(self) -> None:
        for span in self.segments:
            (self.folder / span.segment_name).unlink(missing_ok=True)
        files.fsync(self.folder)
        self.segments, self.bytes, self.rows, self.started_at = [], 0, 0, None
