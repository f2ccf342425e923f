"""Kafka records to Arrow rows: the Avro reader schema of each topic, mapped once to an Arrow schema.

Records are decoded with today's reader schema (``schemas.codec``), so a field added to an
``.avsc`` with a default becomes a new column; files written before it simply lack it, and the
query views read every file by column name (``union_by_name``). Two columns say where each row
came from: ``_partition`` and ``_offset`` (one row per Kafka record, exactly once).

A batch is decoded in two ways (:meth:`RowCodec.rows`): records written with today's schema go
through ``columnar.py`` (all at once, ~10x cheaper); the others (an older writer, bytes the
columnar decoder does not accept) record by record through ``schemas.codec``, which resolves old
schemas and names what is wrong with a bad record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.lake.columnar import ColumnarDecoder, Unsupported
from schemas.codec import (
    EVENT,
    HEADER_SIZE,
    IDENTITY_MERGE,
    IDENTITY_REJECTION,
    SEGMENT_CHANGE,
    TRIGGER,
    SchemaRegistry,
)
from schemas.exceptions import DecodeError
from streams.records import Record

PARTITION = "_partition"
OFFSET = "_offset"

_PRIMITIVES: dict[str, pa.DataType] = {
    "string": pa.string(), "long": pa.int64(), "int": pa.int32(), "boolean": pa.bool_(),
    "double": pa.float64(), "float": pa.float32(), "bytes": pa.binary(),
}


@dataclass(frozen=True)
class TableSpec:
    """One lake table: the topic suffix it is read from, its Avro record, the field giving its date."""

    name: str
    topic_suffix: str
    schema: str
    date_field: str


TABLES: tuple[TableSpec, ...] = (
    TableSpec("events", "events.resolved", EVENT, "timestamp"),
    TableSpec("merges", "identity.merges", IDENTITY_MERGE, "timestamp"),
    TableSpec("rejections", "identity.rejections", IDENTITY_REJECTION, "timestamp"),
    TableSpec("triggers", "triggers", TRIGGER, "fired_at"),
    TableSpec("segments", "segments", SEGMENT_CHANGE, "changed_at"),
)


def arrow_type(avro: Any) -> pa.DataType:
    """The Arrow type of an Avro type (parsed schema); unions with null become nullable."""
    if isinstance(avro, str):
        if avro in _PRIMITIVES:
            return _PRIMITIVES[avro]
        raise ValueError(f"no Arrow type for Avro {avro!r}")
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) != 1:
            raise ValueError(f"no Arrow type for the union {avro!r}")
        return arrow_type(branches[0])
    kind = avro["type"]
    if kind == "enum":
        return pa.string()
    if kind == "array":
        return pa.list_(arrow_type(avro["items"]))
    if kind == "map":
        return pa.map_(pa.string(), arrow_type(avro["values"]))
    if kind == "record":
        return pa.struct([pa.field(f["name"], arrow_type(f["type"])) for f in avro["fields"]])
    return arrow_type(kind)


def arrow_schema(registry: SchemaRegistry, schema: str) -> pa.Schema:
    """Columns of a table: the record's fields, then ``_partition`` and ``_offset``."""
    parsed = registry.current(schema).parsed
    fields = [pa.field(f["name"], arrow_type(f["type"])) for f in parsed["fields"]]
    return pa.schema([*fields, pa.field(PARTITION, pa.int32()), pa.field(OFFSET, pa.int64())])


class RowCodec:
    """Decodes one table's records into an Arrow table (per flush) and finds each row's date."""

    def __init__(self, registry: SchemaRegistry, spec: TableSpec) -> None:
        self.spec = spec
        self.schema = arrow_schema(registry, spec.schema)
        self.decode: Callable[[bytes], dict[str, Any]] = registry.decoder(spec.schema)
        current = registry.current(spec.schema)
        self._header = current.header
        try:
            self._columnar: ColumnarDecoder | None = ColumnarDecoder(current.parsed, self.schema)
        except Unsupported:
            self._columnar = None

    def table(self, rows: Sequence[dict[str, Any]]) -> pa.Table:
        return pa.Table.from_pylist(list(rows), schema=self.schema)

    def rows(self, records: Sequence[Record]) -> tuple[pa.Table, list[tuple[Record, DecodeError]]]:
        """The rows of ``records`` in their order, and the records that cannot be read (why)."""
        header = self._header
        fast = [r for r in records if type(r.value) is bytes and r.value.startswith(header)]
        slow: list[Record] = [] if len(fast) == len(records) else \
            [r for r in records if not (type(r.value) is bytes and r.value.startswith(header))]
        tables: list[pa.Table] = []
        if fast and self._columnar is not None:
            columns, bad = self._columnar.decode([r.value for r in fast], HEADER_SIZE)
            if bad.any():  # checks failed: fastavro reads them or names what is wrong
                flags = bad.tolist()
                slow += [r for r, flagged in zip(fast, flags, strict=True) if flagged]
                fast = [r for r, flagged in zip(fast, flags, strict=True) if not flagged]
                columns = columns.filter(pa.array(~bad)) if fast else columns.slice(0, 0)
            if fast:
                tables.append(self._placed(columns, fast))
        elif fast:
            slow += fast
        failed: list[tuple[Record, DecodeError]] = []
        if slow:
            decoded: list[dict[str, Any]] = []
            for record in sorted(slow, key=lambda r: r.offset):
                try:
                    decoded.append(self.row(record))
                except DecodeError as exc:
                    failed.append((record, exc))
            tables.append(self.table(decoded))
        if len(tables) <= 1:
            return (tables[0] if tables else self.schema.empty_table()), failed
        merged = pa.concat_tables(tables)
        return merged.take(pc.sort_indices(merged, [(OFFSET, "ascending")])), failed

    def _placed(self, columns: pa.Table, records: Sequence[Record]) -> pa.Table:
        """``columns`` with each record's ``_partition`` and ``_offset`` appended."""
        count = len(records)
        partitions = np.fromiter((r.partition for r in records), dtype=np.int32, count=count)
        offsets = np.fromiter((r.offset for r in records), dtype=np.int64, count=count)
        return columns.append_column(self.schema.field(PARTITION), pa.array(partitions)) \
            .append_column(self.schema.field(OFFSET), pa.array(offsets))

    def row(self, record: Record) -> dict[str, Any]:
        """The row of one record; raises ``schemas.exceptions.DecodeError`` for bad bytes."""
        row = self.decode(record.value)
        row[PARTITION] = record.partition
        row[OFFSET] = record.offset
        return row

    def by_date(self, table: pa.Table) -> list[tuple[str, pa.Table]]:
        """The rows of each UTC date (``YYYY-MM-DD``, the Hive partition value), in date order;
        rows keep their order within a date. One date (a live stream's usual roll) costs no copy."""
        if table.num_rows == 0:
            return []
        millis = table.column(self.spec.date_field).to_numpy()
        days = np.floor_divide(millis, DAY_MS)
        if days.min() == days.max():
            return [(_dates(millis[:1])[0], table)]
        order = np.argsort(days, kind="stable")
        _, starts, counts = np.unique(days[order], return_index=True, return_counts=True)
        ordered = table.take(pa.array(order))
        names = _dates(millis[order][starts])
        return [(name, ordered.slice(int(start), int(count)))
                for name, start, count in zip(names, starts, counts, strict=True)]


DAY_MS = 86_400_000


def _dates(millis: np.ndarray) -> list[str]:
    """``YYYY-MM-DD`` (UTC) of epoch milliseconds; Arrow's strftime, as any year it can name."""
    stamps = pc.cast(pa.array(millis, pa.int64()), pa.timestamp("ms", tz="UTC"))
    return list(pc.strftime(stamps, format="%Y-%m-%d").to_pylist())
