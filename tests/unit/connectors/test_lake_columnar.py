"""The lake's batch decoder holds to the record-by-record one: same rows for any valid records of
every lake table, and for damaged bytes either the same row or a flag (then fastavro decides)."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pyarrow as pa
import pytest
from fastavro import schemaless_writer
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connectors.lake.columnar import MAX_BLOCK_ITEMS, ColumnarDecoder, Unsupported
from connectors.lake.rows import TABLES, RowCodec, TableSpec
from schemas.codec import EVENT, HEADER_SIZE, default_registry
from schemas.testing import T0, event_record
from streams.records import Record

REGISTRY = default_registry()
CODECS = {spec.name: RowCodec(REGISTRY, spec) for spec in TABLES}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def values(avro: Any) -> st.SearchStrategy[Any]:
    """Any value of an Avro type (parsed schema), edge cases included."""
    if isinstance(avro, list):
        branches = [values(b) for b in avro]
        return st.one_of(*branches)
    kind = avro if isinstance(avro, str) else avro["type"]
    simple: dict[str, st.SearchStrategy[Any]] = {
        "null": st.none(), "string": st.text(max_size=40), "long": st.integers(-(2**63), 2**63 - 1),
        "int": st.integers(-(2**31), 2**31 - 1), "boolean": st.booleans(),
    }
    if kind in simple:
        return simple[kind]
    if kind == "enum":
        return st.sampled_from(avro["symbols"])
    if kind == "array":
        return st.lists(values(avro["items"]), max_size=6)
    assert kind == "record", kind
    return st.fixed_dictionaries({f["name"]: values(f["type"]) for f in avro["fields"]})


def records_of(spec: TableSpec, encoded: list[bytes], partition: int = 3) -> list[Record]:
    return [Record(partition, 100 + n, None, data, "t") for n, data in enumerate(encoded)]


def slow(codec: RowCodec, records: list[Record]) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    """What the sink did before: fastavro record by record."""
    rows, failed = [], []
    for record in records:
        try:
            rows.append(codec.row(record))
        except Exception as exc:  # compared below: the reasons must match
            failed.append((record.offset, getattr(exc, "reason", type(exc).__name__)))
    return codec.table(rows).to_pylist(), failed


def fast(codec: RowCodec, records: list[Record]) -> tuple[list[dict[str, Any]], list[tuple[int, str]]]:
    table, failed = codec.rows(records)
    assert table.schema == codec.schema
    return table.to_pylist(), [(record.offset, exc.reason) for record, exc in failed]


@pytest.mark.parametrize("spec", TABLES, ids=lambda s: s.name)
def test_valid_records_of_every_table_decode_as_fastavro_does(spec: TableSpec) -> None:
    schema = REGISTRY.current(spec.schema).parsed
    encode = REGISTRY.encoder(spec.schema)
    codec = CODECS[spec.name]

    @FUZZ
    @given(st.lists(values(schema), min_size=1, max_size=25))
    def check(batch: list[dict[str, Any]]) -> None:
        records = records_of(spec, [encode(r) for r in batch])
        assert fast(codec, records) == slow(codec, records)
        columns, bad = codec._columnar.decode([r.value for r in records], HEADER_SIZE)  # type: ignore[union-attr]
        assert not bad.any()  # valid records never take the slow path
        assert columns.num_rows == len(batch)

    check()


EVENTS = [REGISTRY.encode(EVENT, event_record(
    "track", T0 + n, message_id=f"m-{n}", oneid=None if n % 3 else f"o-{n}", event="Order Completed",
    properties={"revenue": n}, context={"campaign": {"source": "wx"}})) for n in range(8)]


@FUZZ
@given(which=st.integers(0, len(EVENTS) - 1), at=st.integers(0, 400), cut=st.booleans(),
       noise=st.binary(min_size=1, max_size=6))
@example(which=0, at=HEADER_SIZE, cut=False, noise=b"\xff" * 6)  # a varint that never ends
@example(which=1, at=10_000, cut=False, noise=b"\x00")  # trailing bytes
@example(which=2, at=HEADER_SIZE + 1, cut=False, noise=b"\xff\xfe")  # not UTF-8
def test_damaged_bytes_give_the_same_rows_and_the_same_dead_letters(which: int, at: int, cut: bool,
                                                                    noise: bytes) -> None:
    data = EVENTS[which]
    at %= len(data) + 1
    damaged = data[:at] if cut else data[:at] + noise + data[at + len(noise):]
    batch = [*EVENTS[:which], damaged, *EVENTS[which + 1:]]
    records = records_of(TABLES[0], batch)
    assert fast(CODECS["events"], records) == slow(CODECS["events"], records)


def test_old_writers_strangers_and_empty_values_take_the_slow_path_in_offset_order() -> None:
    v1 = REGISTRY.versions(EVENT)[0]
    old = dict(event_record("page", T0, message_id="old"))
    old.pop("trusted", None)
    body = BytesIO()
    schemaless_writer(body, v1.parsed, old)
    records = [Record(0, 1, None, EVENTS[0], "t"), Record(0, 2, None, v1.header + body.getvalue(), "t"),
               Record(0, 3, None, b"junk", "t"), Record(0, 4, None, None, "t"),  # type: ignore[arg-type]
               Record(0, 5, None, EVENTS[1], "t")]
    rows, failed = fast(CODECS["events"], records)
    assert (rows, failed) == slow(CODECS["events"], records)
    assert [r["_offset"] for r in rows] == [1, 2, 5]
    assert [offset for offset, _ in failed] == [3, 4]


def test_an_array_block_too_long_to_loop_over_is_left_to_fastavro() -> None:
    many = [{"type": "email", "value": f"p{n}@example.cn"} for n in range(MAX_BLOCK_ITEMS + 1)]
    record = event_record("identify", T0, message_id="many", oneid="o-1")
    record["identifiers"] = many
    data = REGISTRY.encode(EVENT, record)
    codec = CODECS["events"]
    _, bad = codec._columnar.decode([EVENTS[0], data], HEADER_SIZE)  # type: ignore[union-attr]
    assert bad.tolist() == [False, True]
    records = records_of(TABLES[0], [EVENTS[0], data])
    rows, failed = fast(codec, records)
    assert (rows, failed) == slow(codec, records)
    assert len(rows[1]["identifiers"]) == MAX_BLOCK_ITEMS + 1


def test_a_schema_it_cannot_read_in_lockstep_is_refused() -> None:
    mapped = {"type": "record", "name": "M",
              "fields": [{"name": "m", "type": {"type": "map", "values": "long"}}]}
    with pytest.raises(Unsupported):
        ColumnarDecoder(mapped, pa.schema([pa.field("m", pa.map_(pa.string(), pa.int64()))]))


def test_rows_are_split_by_utc_date_keeping_their_order() -> None:
    day = 86_400_000
    midnight = (T0 // day + 1) * day
    stamps = [midnight - 1, midnight, midnight - 2, midnight + day, midnight + 5]
    encoded = [REGISTRY.encode(EVENT, event_record("track", ts, message_id=f"d-{n}"))
               for n, ts in enumerate(stamps)]
    table, _ = CODECS["events"].rows(records_of(TABLES[0], encoded))
    split = [(name, part.column("message_id").to_pylist()) for name, part in CODECS["events"].by_date(table)]
    assert split == [("2023-11-14", ["d-0", "d-2"]), ("2023-11-15", ["d-1", "d-4"]), ("2023-11-16", ["d-3"])]
