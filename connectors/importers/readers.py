"""Streaming row readers for CSV/TSV, JSONL, Parquet and Excel (.xlsx), chosen by extension.

A 1 GB export must not be loaded into memory: every reader yields chunks of rows and can say
how far it has got (bytes for text files, rows for Parquet and Excel) for the progress bar.
Text files are UTF-8 or, as Chinese CRMs and Excel "CSV" exports often are, GBK/GB18030: with
``encoding="auto"`` the first megabyte decides (valid UTF-8, else GB18030, GBK's superset).
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, cast

import openpyxl
import pyarrow.parquet as pq

from touchstream.errors import ConfigError

#: Extensions understood (``.gz`` may follow the text ones).
FORMATS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "xlsx",
}
#: how much of a text file decides its encoding under "auto"
SNIFF_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class RawRow:
    """Data row ``number`` (1-based, header excluded) as a dict, or why it could not be read."""

    number: int
    data: dict[str, Any] | None
    reason: str | None = None
    detail: str | None = None


class RowReader:
    """Base of the readers: a context manager that yields chunks of :class:`RawRow`."""

    unit = "bytes"  # what total/position count: "bytes" or "rows"
    columns: list[str] | None = None  # known up front (CSV header, Parquet schema), else None

    def __init__(self, path: Path) -> None:
        self.path = path
        self.total = 0

    def position(self) -> int:
        raise NotImplementedError

    def rows(self) -> Iterator[RawRow]:
        raise NotImplementedError

    def chunks(self, size: int) -> Iterator[list[RawRow]]:
        chunk: list[RawRow] = []
        for row in self.rows():
            chunk.append(row)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def close(self) -> None:
        """Release the file; nothing to do for readers that open lazily."""

    def __enter__(self) -> RowReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` when the first megabyte is valid UTF-8 (a BOM is dropped), else ``gb18030``."""
    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rb") as handle:
        head = handle.read(SNIFF_BYTES)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)  # a cut last char is fine
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8-sig"


def _encoding(path: Path, encoding: str) -> str:
    if encoding == "auto":
        return detect_encoding(path)
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise ConfigError(f"unknown encoding {encoding!r}; use auto, utf-8 or gb18030") from None
    return "utf-8-sig" if name == "utf-8" else name


class _TextReader(RowReader):
    """Text formats read through one binary handle, whose offset is the progress."""

    def __init__(self, path: Path, encoding: str = "auto") -> None:
        super().__init__(path)
        self.encoding = _encoding(path, encoding)
        self.total = path.stat().st_size
        self._raw = path.open("rb")
        gzipped = path.suffix.lower() == ".gz"
        # GzipFile reads like the raw file; typeshed does not say so for TextIOWrapper
        stream = cast(BinaryIO, gzip.GzipFile(fileobj=self._raw)) if gzipped else self._raw
        # utf-8-sig: spreadsheets put a BOM in front of the first column's name; a stray bad byte
        # becomes U+FFFD in its row rather than ending a long import.
        self._text = io.TextIOWrapper(stream, encoding=self.encoding, errors="replace", newline="")

    def position(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        self._text.close()
        self._raw.close()


class CsvReader(_TextReader):
    """CSV (or TSV) with a header row; values stripped, empty cells absent (None)."""

    def __init__(self, path: Path, delimiter: str = ",", encoding: str = "auto") -> None:
        super().__init__(path, encoding)
        self._reader = csv.reader(self._text, delimiter=delimiter)
        try:
            header = next(self._reader)
        except StopIteration:
            header = []
        self.columns = [name.strip() for name in header]
        if not self.columns or any(not name for name in self.columns):
            self.close()
            raise ConfigError(f"{path.name}: the first line must be a header naming every column")

    def rows(self) -> Iterator[RawRow]:
        columns = self.columns or []
        width = len(columns)
        number = 0
        while True:
            try:
                cells = next(self._reader)
            except StopIteration:
                return
            except csv.Error as exc:
                number += 1
                yield RawRow(number, None, "bad_row", f"unreadable CSV row: {exc}")
                continue
            if not cells:
                continue  # blank line
            number += 1
            if len(cells) > width:
                yield RawRow(number, None, "bad_row", f"{len(cells)} cells but {width} columns in the header")
                continue
            data = {}
            for name, cell in zip(columns, cells, strict=False):
                cell = cell.strip()
                data[name] = cell or None
            yield RawRow(number, data)


class JsonlReader(_TextReader):
    """One JSON object per line; blank lines are skipped."""

    def rows(self) -> Iterator[RawRow]:
        number = 0
        for line in self._text:
            if not line.strip():
                continue
            number += 1
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                yield RawRow(number, None, "bad_json", f"not JSON: {exc.msg} at column {exc.colno}")
                continue
            if not isinstance(data, dict):
                yield RawRow(number, None, "not_an_object", "the line is JSON but not an object")
                continue
            yield RawRow(number, data)


class ParquetReader(RowReader):
    """Parquet read one record batch at a time; Arrow values become JSON-ready Python values."""

    unit = "rows"

    def __init__(self, path: Path, batch_rows: int = 2048) -> None:
        super().__init__(path)
        self._file = pq.ParquetFile(path)
        self.total = self._file.metadata.num_rows
        self.columns = list(self._file.schema_arrow.names)
        self._batch_rows = batch_rows
        self._read = 0

    def position(self) -> int:
        return self._read

    def rows(self) -> Iterator[RawRow]:
        number = 0
        for batch in self._file.iter_batches(batch_size=self._batch_rows):
            for data in batch.to_pylist():
                number += 1
                self._read = number
                yield RawRow(number, {k: plain(v) for k, v in data.items()})

    def close(self) -> None:
        self._file.close()


class XlsxReader(RowReader):
    """The first sheet of an Excel workbook, streamed (openpyxl read-only); the first row is the
    header. Dates come as naive datetimes: ``--timezone`` says where they were written."""

    unit = "rows"

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            self._book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except Exception as exc:  # zipfile/XML errors of a damaged file: the user's file, not a crash
            raise ConfigError(f"{path.name}: not a readable .xlsx workbook ({type(exc).__name__})") from None
        sheet = self._book.worksheets[0]
        self._rows = sheet.iter_rows(values_only=True)
        header = next(self._rows, None) or ()
        self.columns = [str(name).strip() if name is not None else "" for name in header]
        if not self.columns or any(not name for name in self.columns):
            self.close()
            raise ConfigError(f"{path.name}: the first row must be a header naming every column")
        self.total = max(0, (sheet.max_row or 1) - 1)
        self._read = 0

    def position(self) -> int:
        return self._read

    def rows(self) -> Iterator[RawRow]:
        columns = self.columns or []
        number = 0
        for cells in self._rows:
            if not cells or all(cell is None or cell == "" for cell in cells):
                continue  # blank row
            number += 1
            self._read = number
            if len(cells) > len(columns) and any(c is not None for c in cells[len(columns):]):
                yield RawRow(number, None, "bad_row", f"cells beyond the {len(columns)} header columns")
                continue
            data = {}
            for name, cell in zip(columns, cells, strict=False):
                value = cell.strip() if isinstance(cell, str) else plain(cell)
                data[name] = None if value == "" else value
            yield RawRow(number, data)

    def close(self) -> None:
        self._book.close()


def plain(value: Any) -> Any:
    """A JSON-ready value: times as ISO text, decimals as numbers, NaN as absent."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def file_format(path: Path) -> str:
    """csv | tsv | jsonl | parquet | xlsx, from the extension (``.gz`` allowed after csv/tsv/jsonl)."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
        fmt = FORMATS.get(suffixes[-1]) if suffixes else None
        if fmt in ("parquet", "xlsx"):
            fmt = None
    else:
        fmt = FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None:
        raise ConfigError(
            f"{path.name}: unknown file type; use one of {', '.join(sorted(FORMATS))} (text ones may be .gz)"
        )
    return fmt


def open_reader(path: Path, encoding: str = "auto") -> RowReader:
    """The reader for ``path``'s format; :class:`ConfigError` when the file is not usable.
    ``encoding`` applies to text formats (``auto``: UTF-8 or GB18030, see the module)."""
    fmt = file_format(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    if fmt == "csv":
        return CsvReader(path, encoding=encoding)
    if fmt == "tsv":
        return CsvReader(path, delimiter="\t", encoding=encoding)
    if fmt == "jsonl":
        return JsonlReader(path, encoding)
    if fmt == "xlsx":
        return XlsxReader(path)
    return ParquetReader(path)
