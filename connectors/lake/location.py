"""Where the lake's files live: a local folder, or any filesystem pyarrow opens by URL.

``TOUCHSTREAM_LAKE_PATH`` is a folder (the default, ``.local/lake``) or a URL
(``s3://bucket/prefix``, ``gs://bucket/prefix``, ``hdfs://host/path``, ``file:///path``) opened
with ``pyarrow.fs.FileSystem.from_uri``; credentials come the way pyarrow reads them (for S3:
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL``, or
the instance's role), never from a setting we print. :class:`LakeLocation` is the few operations
the lake needs over either, so the sink, compaction and the readers have one code path:

* **list** a table's files with their spans (and sizes), by the names ``layout.py`` gives them;
* **write** a Parquet file under its final name *whole or not at all*: on the local disk a
  temporary name, fsync, rename and fsync of the folder (``files.py``); on an object store
  (S3, GCS) a plain upload, because an object becomes visible only when its upload completes
  and a second upload of the same name replaces it whole; on any other filesystem (HDFS) a
  temporary name and a move;
* **read** a file, **delete** one, and hand DuckDB a ``pyarrow.dataset`` of files (DuckDB's own
  ``httpfs`` extension would have to be downloaded at run time; pyarrow's filesystems are in
  the wheel).

What an object store lacks, the lake does not ask of it: there is no fsync and no atomic rename,
so the sink's spool (segments made durable before the offsets are committed, and the roll
manifests) stays on a local folder (``TOUCHSTREAM_LAKE_SPOOL_PATH``); only finished Parquet files
go to the remote lake, each under the name that carries its offset range, so an upload repeated
after a crash writes the same object again: exactly once per offset range.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from connectors.lake import files, layout
from connectors.lake.exceptions import LakeError
from connectors.lake.layout import Span

#: Filesystems whose upload is atomic under its final name (no rename needed, none offered).
OBJECT_STORES = frozenset({"s3", "gcs"})


def is_url(where: str | Path) -> bool:
    """A URL pyarrow opens (``s3://...``), as opposed to a plain folder."""
    return isinstance(where, str) and "://" in where


def local_folder(where: str | Path) -> Path | None:
    """The folder a plain path or a ``file://`` URL names; None for any other URL."""
    if not is_url(where):
        return Path(where)
    parts = urlsplit(str(where))
    return Path(parts.path) if parts.scheme == "file" else None


def with_endpoint(url: str, endpoint: str) -> str:
    """An ``s3://`` URL pointed at an S3-compatible ``endpoint`` (``http://host:port``), in the
    query options ``from_uri`` reads; anything else unchanged."""
    if not endpoint or not url.startswith("s3://"):
        return url
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    options = f"endpoint_override={parts.netloc}&scheme={parts.scheme or 'https'}"
    split = urlsplit(url)
    query = f"{split.query}&{options}" if split.query else options
    return urlunsplit((split.scheme, split.netloc, split.path, query, ""))


def shown(where: str | Path) -> str:
    """``where`` fit for a log line: a URL without credentials or query options."""
    if not is_url(where):
        return str(where)
    parts = urlsplit(str(where))
    return urlunsplit((parts.scheme, parts.hostname or "", parts.path, "", ""))


@dataclass(frozen=True)
class LakeFile:
    """One lake file: its path in the lake's filesystem, its span and its size in bytes."""

    path: str
    span: Span
    size: int


@dataclass(frozen=True)
class LakeLocation:
    """The lake's filesystem and its base path there; ``folder`` when it is the local disk."""

    fs: pafs.FileSystem
    base: str
    folder: Path | None = None
    url: str = ""

    @classmethod
    def open(cls, where: str | Path) -> LakeLocation:
        """A folder (``Path`` or text without a scheme) or a URL pyarrow's filesystems open."""
        folder = local_folder(where)
        if folder is not None:
            return cls(pafs.LocalFileSystem(), folder.absolute().as_posix(), folder, str(where))
        try:
            fs, base = pafs.FileSystem.from_uri(str(where))
        except (pa.ArrowInvalid, OSError) as exc:
            raise LakeError(f"the lake {shown(where)} cannot be opened: {exc}") from None
        return cls(fs, base.rstrip("/"), None, str(where))

    @property
    def local(self) -> bool:
        return self.folder is not None

    @property
    def atomic_upload(self) -> bool:
        return self.fs.type_name in OBJECT_STORES

    def __str__(self) -> str:
        return shown(self.url) if self.url else self.base

    def join(self, *parts: str) -> str:
        return posixpath.join(self.base, *parts)

    def relative(self, path: str) -> str:
        return posixpath.relpath(path, self.base)

    # -- listing ---------------------------------------------------------------------------------

    def _infos(self, under: str) -> list[pafs.FileInfo]:
        if self.folder is not None and not Path(under).exists():
            return []
        try:
            return self.fs.get_file_info(pafs.FileSelector(under, recursive=True, allow_not_found=True))
        except OSError as exc:
            raise LakeError(f"the lake {self} cannot be listed: {exc}") from None

    def table_files(self, table: str) -> list[LakeFile]:
        """Every file of ``table`` with its span and size, covered ones included, by path."""
        found = []
        for info in self._infos(self.join(table)):
            if info.type != pafs.FileType.File:
                continue
            folder = posixpath.basename(posixpath.dirname(info.path))
            span = layout.parse_file_name(info.base_name)
            if span is not None and folder.startswith(f"{layout.DATE_KEY}="):
                found.append(LakeFile(info.path, span, info.size or 0))
        return sorted(found, key=lambda f: f.path)

    def temporaries(self, table: str, kind: str) -> list[str]:
        """Hidden temporary files of ``kind`` a crash left under ``table`` (``files.temporary``)."""
        return [i.path for i in self._infos(self.join(table))
                if i.type == pafs.FileType.File and i.base_name.startswith(".")
                and i.base_name.endswith(f".{kind}.tmp")]

    def exists(self, path: str) -> bool:
        try:
            return bool(self.fs.get_file_info(path).type == pafs.FileType.File)
        except OSError as exc:
            raise LakeError(f"the lake {self} cannot be read: {exc}") from None

    # -- reading and writing ---------------------------------------------------------------------

    def read_parquet(self, path: str, columns: Sequence[str] | None = None) -> pa.Table:
        return pq.read_table(path, columns=columns, filesystem=self.fs)

    def column_names(self, path: str) -> list[str]:
        """A Parquet file's columns, from its footer."""
        return list(pq.read_schema(path, filesystem=self.fs).names)

    def write_parquet(self, table: pa.Table, path: str, kind: str) -> int:
        """Write ``table`` as zstd Parquet under its final ``path``, whole or not at all (module
        doc; a temporary name, where one is needed, is of ``kind``); replaces a file of that name.
        Its size in bytes."""
        if self.folder is not None:
            final = Path(path)
            tmp = files.temporary(final, kind)
            size = files.write_parquet(table, tmp)
            files.publish(tmp, final)
            return size
        if self.atomic_upload:  # visible when the upload completes, never in part
            return self._put(table, path)
        self.fs.create_dir(posixpath.dirname(path), recursive=True)
        staged = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.{kind}.tmp")
        size = self._put(table, staged)
        self.fs.move(staged, path)
        return size

    def _put(self, table: pa.Table, path: str) -> int:
        try:
            with self.fs.open_output_stream(path) as out:
                pq.write_table(table, out, compression=files.COMPRESSION)
                return int(out.tell())
        except OSError as exc:
            raise LakeError(f"the lake {self} cannot be written: {exc}") from None

    def delete(self, path: str) -> None:
        """Delete a file; one already gone is fine."""
        if self.folder is not None:
            Path(path).unlink(missing_ok=True)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(path)

    def sync(self, folder: str) -> None:
        """Make deletions and renames in a local folder durable (nothing to do elsewhere)."""
        if self.folder is not None and Path(folder).exists():
            files.fsync(Path(folder))

    def dataset(self, paths: Sequence[str], schema: pa.Schema, *, hive_under: str | None) -> ds.Dataset:
        """The files as one dataset of ``schema`` (a column a file lacks reads as null), with the
        ``event_date`` column from the folder names when ``hive_under`` (the table's folder)."""
        if hive_under is None:
            return ds.dataset(list(paths), schema=schema, filesystem=self.fs, format="parquet")
        dates = pa.schema([pa.field(layout.DATE_KEY, pa.date32())])
        return ds.dataset(list(paths), schema=pa.unify_schemas([schema, dates]), filesystem=self.fs,
                          format="parquet", partitioning=ds.partitioning(dates, flavor="hive"),
                          partition_base_dir=hive_under)

    # -- what the lake's layout asks ---------------------------------------------------------------

    def date_dir(self, table: str, day: str) -> str:
        return self.join(table, f"{layout.DATE_KEY}={day}")

    def next_offsets(self, table: str, topic: str) -> dict[int, int]:
        """Per partition of ``topic``: the offset after the last one any file of ``table`` holds."""
        ends: dict[int, int] = {}
        for f in self.table_files(table):
            if f.span.topic == topic:
                ends[f.span.partition] = max(ends.get(f.span.partition, 0), f.span.last + 1)
        return ends
