"""Kafka records to Arrow rows: the Avro reader schema of each topic, mapped once to an Arrow schema.

Records are decoded with today's reader schema (``schemas.codec``), so a field added to an
``.avsc`` with a default becomes a new column; files written before it simply lack it, and the
query views read every file by column name (``union_by_name``). Two columns say where each row
came from: ``_partition`` and ``_offset`` (one row per Kafka record, exactly once).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from schemas.codec import EVENT, IDENTITY_MERGE, IDENTITY_REJECTION, SEGMENT_CHANGE, TRIGGER, SchemaRegistry
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

    def table(self, rows: Sequence[dict[str, Any]]) -> pa.Table:
        return pa.Table.from_pylist(list(rows), schema=self.schema)

    def row(self, record: Record) -> dict[str, Any]:
        """The row of one record; raises ``schemas.exceptions.DecodeError`` for bad bytes."""
        row = self.decode(record.value)
        row[PARTITION] = record.partition
        row[OFFSET] = record.offset
        return row

    def dates(self, table: pa.Table) -> pa.Array:
        """Each row's UTC date as ``YYYY-MM-DD`` (the Hive partition value)."""
        millis = table.column(self.spec.date_field)
        stamps = pc.cast(millis, pa.timestamp("ms", tz="UTC"))
        return pc.strftime(stamps, format="%Y-%m-%d")
