"""One topic partition's rows between Kafka and a Parquet file: durable segments, then a roll.

The sink's loop commits offsets after every batch, but a lake file should hold up to 128 MB or a
minute of rows. So each batch is first made durable as a *segment* (an Arrow IPC file named by
its offset range, written under a temporary name, fsynced, renamed) before the loop commits; a
*roll* turns the partition's segments into one Parquet file per event date, all named by the
rolled offset range, then deletes the segments.

A roll is made atomic by a manifest: the Parquet files are written under temporary names, the
manifest (their final paths) is published, the files are renamed, the segments deleted, the
manifest deleted. On restart (:meth:`PartitionSpool.recover`): a manifest whose files all exist
only needs its segments deleted; otherwise the roll is done again from the segments, which are
all still there, under the same names (a rename replaces). ``next_offset`` is the offset after
the last one in a segment or a lake file, and the sink skips records below it: a batch replayed
after SIGKILL lands exactly once.

A roll holds the lake's files lock (shared: rolls run side by side; an erasure waits) and passes
its rows through ``keep`` (the sink's filter of
erased people, ``erase.py``) before writing them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from connectors.lake import files, layout, locks
from connectors.lake.layout import Span
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
    paths: list[Path] = field(default_factory=list)


class PartitionSpool:
    """The segments of one topic partition under ``<lake>/_spool/<topic>+<partition>/``."""

    def __init__(self, root: Path, codec: RowCodec, topic: str, partition: int,
                 keep: Callable[[str, pa.Table], pa.Table] | None = None) -> None:
        self.root = root
        self.codec = codec
        self.keep = keep
        self.topic = topic
        self.partition = partition
        self.folder = root / layout.SPOOL / layout.spool_dir_name(topic, partition)
        self.segments: list[Span] = []
        self.bytes = 0  # Arrow bytes in the segments: what a roll is sized by
        self.rows = 0
        self.started_at: float | None = None  # wall clock of the oldest segment
        self.next_offset = 0

    # -- restart ---------------------------------------------------------------------------------

    def recover(self) -> Written:
        """Finish or redo a roll a crash interrupted; load the segments; find ``next_offset``."""
        written = Written()
        if self.folder.exists():
            files.remove_temporaries(self.folder, SEGMENT_TMP)
            self._load_segments()
            manifest = self.folder / layout.ROLL_MANIFEST
            if manifest.exists():
                paths = [self.root / p for p in json.loads(manifest.read_text())["files"]]
                if all(p.exists() for p in paths):
                    self._forget_segments()
                else:
                    log.info("lake: redoing an interrupted roll of %s/%s", self.topic, self.partition)
                    written = self.roll()
                manifest.unlink(missing_ok=True)
            self.rows = sum(files.read_arrow(self.folder / s.segment_name).num_rows for s in self.segments)
        ends = layout.next_offsets(self.root, self.codec.spec.name, self.topic)
        self.next_offset = max(ends.get(self.partition, 0),
                               self.segments[-1].last + 1 if self.segments else 0)
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
        with locks.held(self.root, locks.FILES_LOCK, shared=True):
            return self._roll()

    def _roll(self) -> Written:
        written = Written()
        tables = [files.read_arrow(self.folder / s.segment_name) for s in self.segments]
        rows = pa.concat_tables(tables, promote_options="default")
        if self.keep is not None:
            rows = self.keep(self.codec.spec.name, rows)
        span = Span(self.topic, self.partition, self.segments[0].first, self.segments[-1].last)
        staged: list[tuple[Path, Path]] = []
        for day, part in self.codec.by_date(rows):
            final = layout.date_dir(self.root, self.codec.spec.name, day) / span.file_name
            tmp = files.temporary(final, ROLL_TMP)
            written.bytes += files.write_parquet(part, tmp)
            written.rows += part.num_rows
            staged.append((tmp, final))
        manifest = self.folder / layout.ROLL_MANIFEST
        relative = [str(final.relative_to(self.root)) for _, final in staged]
        manifest_tmp = files.temporary(manifest, SEGMENT_TMP)
        manifest_tmp.write_text(json.dumps({"files": relative}))
        files.fsync(manifest_tmp)
        files.publish(manifest_tmp, manifest)
        for tmp, final in staged:  # the commit point is the manifest: from here on, redo or finish
            files.publish(tmp, final)
            written.paths.append(final)
        written.files = len(staged)
        self._forget_segments()
        manifest.unlink()
        files.fsync(self.folder)
        return written

    def _forget_segments(self) -> None:
        for span in self.segments:
            (self.folder / span.segment_name).unlink(missing_ok=True)
        files.fsync(self.folder)
        self.segments, self.bytes, self.rows, self.started_at = [], 0, 0, None
