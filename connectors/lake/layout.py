"""Where the lake keeps what: file names that carry their Kafka offset range, and which files count.

::

    <lake>/<table>/event_date=YYYY-MM-DD/<topic>+<partition>+<first>+<last>.parquet
    <lake>/profiles/snapshot.parquet                            `touchstream lake snapshot`
    <spool>/<topic>+<partition>/<first>+<last>.arrow            rows durable, not yet rolled
    <spool>/<topic>+<partition>/roll.json                       a roll in progress (its files)

``<spool>`` is ``<lake>/_spool`` for a lake folder; a lake at a URL (``location.py``) keeps it on
a local folder of its own (``TOUCHSTREAM_LAKE_SPOOL_PATH``), since an object store has neither
fsync nor an atomic rename.

Offsets are zero-padded to 20 digits so names sort by offset. ``+`` never appears in a Kafka
topic name. One roll writes one file per event date under the same name (the rows of that
offset range whose date is that day). A file whose range lies inside another file's range of
the same topic and partition in the same folder is *covered*: compaction's inputs once its
output exists. Readers ignore covered files, so a compaction is atomic at its rename.
"""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

SPOOL = "_spool"
ROLL_MANIFEST = "roll.json"
PROFILES = "profiles"
SNAPSHOT = "snapshot.parquet"
DATE_KEY = "event_date"

_NAME = re.compile(
    r"(?P<topic>[A-Za-z0-9._-]+)\+(?P<partition>\d+)\+(?P<first>\d{20})\+(?P<last>\d{20})\.parquet")
_SEGMENT = re.compile(r"(?P<first>\d{20})\+(?P<last>\d{20})\.arrow")
P = TypeVar("P", str, Path)


@dataclass(frozen=True, order=True)
class Span:
    """A file of one topic partition holding rows of offsets ``first..last`` (inclusive)."""

    topic: str
    partition: int
    first: int
    last: int

    @property
    def file_name(self) -> str:
        return f"{self.topic}+{self.partition}+{self.first:020d}+{self.last:020d}.parquet"

    @property
    def segment_name(self) -> str:
        return f"{self.first:020d}+{self.last:020d}.arrow"

    def covers(self, other: Span) -> bool:
        return (self.topic, self.partition) == (other.topic, other.partition) and \
            self.first <= other.first and other.last <= self.last and self != other


def parse_file_name(name: str) -> Span | None:
    """The span a lake file's name carries; None for anything else (temporary files, strangers)."""
    match = _NAME.fullmatch(name)
    if match is None:
        return None
    return Span(match["topic"], int(match["partition"]), int(match["first"]), int(match["last"]))


def parse_segment_name(topic: str, partition: int, name: str) -> Span | None:
    match = _SEGMENT.fullmatch(name)
    if match is None:
        return None
    return Span(topic, partition, int(match["first"]), int(match["last"]))


def spool_dir_name(topic: str, partition: int) -> str:
    return f"{topic}+{partition}"


def parse_spool_dir_name(name: str) -> tuple[str, int] | None:
    topic, sep, partition = name.rpartition("+")
    if not sep or not partition.isdigit():
        return None
    return topic, int(partition)


def date_dir(root: Path, table: str, day: str) -> Path:
    return root / table / f"{DATE_KEY}={day}"


def table_files(root: Path, table: str) -> list[tuple[Path, Span]]:
    """Every lake file of ``table`` with its span (covered ones included)."""
    found = []
    for path in sorted((root / table).glob(f"{DATE_KEY}=*/*.parquet")):
        span = parse_file_name(path.name)
        if span is not None:
            found.append((path, span))
    return found


def _folder(path: str | Path) -> str:
    return posixpath.dirname(str(path))


def live(files: Iterable[tuple[P, Span]]) -> list[tuple[P, Span]]:
    """The files readers count: those no other file of their folder covers (paths are ``Path``
    or, for any filesystem, text)."""
    by_folder: dict[tuple[str, str, int], list[tuple[P, Span]]] = defaultdict(list)
    for path, span in files:
        by_folder[(_folder(path), span.topic, span.partition)].append((path, span))
    kept: list[tuple[P, Span]] = []
    for group in by_folder.values():
        spans = [span for _, span in group]
        kept.extend((path, span) for path, span in group if not any(other.covers(span) for other in spans))
    return sorted(kept, key=lambda item: (str(item[0]), item[1]))


def covered(files: Iterable[tuple[P, Span]]) -> list[P]:
    """The files a finished compaction left behind (safe to delete)."""
    files = list(files)
    keep = {str(path) for path, _ in live(files)}
    return [path for path, _ in files if str(path) not in keep]


def next_offsets(root: Path, table: str, topic: str) -> dict[int, int]:
    """Per partition of ``topic``: the offset after the last one any lake file of ``table`` holds."""
    ends: dict[int, int] = {}
    for _, span in table_files(root, table):
        if span.topic == topic:
            ends[span.partition] = max(ends.get(span.partition, 0), span.last + 1)
    return ends
