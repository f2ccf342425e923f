"""DuckDB over the lake: one view per table, the identity view, and output in four formats.

Views are built from the live file list (``layout.live``: files a compaction covered are left
out), read by column name so files written before a schema change still read, with the
``event_date`` Hive column from the folder names. A table with no file yet is an empty view with
the table's columns, so a query never fails for want of data. A lake folder is read by DuckDB's
own Parquet reader; a lake at a URL (``location.py``: S3, GCS, HDFS) through pyarrow datasets
over pyarrow's filesystem, which DuckDB scans with projection and filter pushdown (its
``httpfs`` extension would be a download at run time).

``events`` holds each event once: the resolve stage may put an event on its topic twice after a
crash (a new offset, the same messageId), and the lake keeps one row per Kafka record, so the view
keeps the first copy per (source, messageId), as the profile stage's claims did; every record
stays readable in ``events_raw``.

``identities`` maps every OneID the lake knows (stamped on an event, or merged) to its survivor
by following the merges table to its end: history follows merges without rewriting a file
(``merged_identities`` is that walk alone: merged OneIDs only, without scanning the events). An
operator's unmerge (a merges row of kind ``unmerge``: the identifiers that left ``survivor`` for
the new OneID ``merged``) moves history too: in ``events``, an event received before the split
whose identifiers all moved carries the new OneID (the rest stay: an event that also carried a
kept identifier is the one that linked them wrongly, and stays with the person it came from).
"""

from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.lake import layout
from connectors.lake.exceptions import LakeError
from connectors.lake.location import LakeLocation
from connectors.lake.rows import OFFSET, PARTITION, TABLES, arrow_schema
from connectors.lake.snapshot import SNAPSHOT_SCHEMA
from schemas.codec import SchemaRegistry, default_registry

FORMATS = ("table", "csv", "json", "parquet")
RAW_EVENTS = "events_raw"
# the lake's own constant names only: nothing a user wrote
# The copies of an event after its first (the resolve stage re-sent it after a crash): found once
# per connection by grouping on the key alone, so the events view is a scan with an anti-join on a
# table that is almost always empty (a window over every column cost 10-75x a scan).
COPIES = f"""
CREATE TEMP TABLE _event_copies AS
WITH copied AS (SELECT source, message_id FROM {RAW_EVENTS} GROUP BY ALL HAVING count(*) > 1)
SELECT e.source, e.message_id, e.{PARTITION}, e.{OFFSET}
FROM {RAW_EVENTS} e SEMI JOIN copied USING (source, message_id)
QUALIFY row_number() OVER (PARTITION BY e.source, e.message_id ORDER BY e.{PARTITION}, e.{OFFSET}) > 1
"""  # noqa: S608
FIRSTS = f"SELECT * FROM {RAW_EVENTS} ANTI JOIN _event_copies USING (source, message_id, {PARTITION}, {OFFSET})"  # noqa: S608, E501
# An operator's unmerge moves the history of the identifiers it split off (only built when the lake
# holds one: the join is not free).
UNMERGED = """
WITH firsts AS ({firsts}), splits AS (
    SELECT merged AS new_oneid, timestamp AS at, [i.type || ':' || i.value FOR i IN identifiers] AS moved
    FROM merges WHERE kind = 'unmerge'
), moved AS (
    SELECT f.source, f.message_id, arg_max(s.new_oneid, s.at) AS new_oneid
    FROM (SELECT source, message_id, received_at, identifiers FROM {raw}) f  -- narrow; copies agree
    JOIN splits s ON f.received_at <= s.at AND len(f.identifiers) > 0
        AND list_has_all(s.moved, [i.type || ':' || i.value FOR i IN f.identifiers])
    GROUP BY f.source, f.message_id
)
SELECT f.* REPLACE (coalesce(m.new_oneid, f.oneid) AS oneid)
FROM firsts f LEFT JOIN moved m ON f.source = m.source AND f.message_id = m.message_id
"""
# A chain is followed for at most 64 merges (a cycle left by an unmerge and a re-merge stops there).
# MERGED alone is every merged OneID's survivor (what a join that needs only those reads: the
# events view is not scanned for it); IDENTITIES adds every other stamped OneID as its own.
MERGED = """
CREATE VIEW merged_identities AS
WITH RECURSIVE links AS (
    SELECT merged, arg_max(survivor, timestamp) AS survivor FROM merges
    WHERE coalesce(kind, 'merge') = 'merge' GROUP BY merged
), walk(oneid, survivor, depth) AS (
    SELECT merged, survivor, 1 FROM links
    UNION ALL
    SELECT w.oneid, l.survivor, w.depth + 1 FROM walk w JOIN links l ON l.merged = w.survivor
    WHERE w.depth < 64
)
SELECT oneid, arg_max(survivor, depth) AS survivor, max(depth) AS hops FROM walk GROUP BY oneid
"""
IDENTITIES = """
CREATE VIEW identities AS
SELECT oneid, survivor, hops FROM merged_identities
UNION ALL
SELECT DISTINCT oneid, oneid AS survivor, 0 AS hops FROM events
WHERE oneid IS NOT NULL AND oneid NOT IN (SELECT oneid FROM merged_identities)
"""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _parquet_view(con: duckdb.DuckDBPyConnection, name: str, paths: Sequence[str], empty: pa.Table,
                  hive: bool) -> None:
    con.register(f"_empty_{name}", empty)
    if paths:
        listed = ", ".join(_quote(p) for p in paths)
        options = "hive_partitioning = true, union_by_name = true" if hive else "union_by_name = true"
        # a view cannot take parameters: the paths are quoted, the names are the lake's own tables.
        # The empty table's columns are unioned in by name: a column added to the schema after the
        # files were written reads as NULL instead of being missing.
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet([{listed}], {options}) "  # noqa: S608
                    f"UNION ALL BY NAME SELECT * FROM _empty_{name}")
        return
    extra = ", CAST(NULL AS DATE) AS event_date" if hive else ""
    con.execute(f"CREATE VIEW {name} AS SELECT *{extra} FROM _empty_{name}")  # noqa: S608


def _dataset_view(con: duckdb.DuckDBPyConnection, name: str, lake: LakeLocation, paths: Sequence[str],
                  empty: pa.Table, hive_under: str | None) -> None:
    """The view over a remote lake's files: a pyarrow dataset of the table's schema (a column a
    file lacks reads as null, as ``union_by_name`` with the empty table does locally)."""
    if not paths:
        _parquet_view(con, name, [], empty, hive_under is not None)
        return
    con.register(f"_files_{name}", lake.dataset(paths, empty.schema, hive_under=hive_under))
    con.execute(f"CREATE VIEW {name} AS SELECT * FROM _files_{name}")  # noqa: S608


def connect(root: Path | str | LakeLocation,
            registry: SchemaRegistry | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the views ``events``, ``merges``, ``rejections``, ``triggers``,
    ``segments``, ``profiles`` and ``identities`` over the lake at ``root`` (a folder or a URL)."""
    registry = registry or default_registry()
    lake = root if isinstance(root, LakeLocation) else LakeLocation.open(root)
    con = duckdb.connect()
    for spec in TABLES:
        paths = [path for path, _ in layout.live((f.path, f.span) for f in lake.table_files(spec.name))]
        name = RAW_EVENTS if spec.name == "events" else spec.name
        empty = arrow_schema(registry, spec.schema).empty_table()
        if lake.local:
            _parquet_view(con, name, paths, empty, hive=True)
        else:
            _dataset_view(con, name, lake, paths, empty, lake.join(spec.name))
    _events_view(con)
    snapshot = lake.join(layout.PROFILES, layout.SNAPSHOT)
    found = [snapshot] if lake.exists(snapshot) else []
    if lake.local:
        _parquet_view(con, "profiles", found, SNAPSHOT_SCHEMA.empty_table(), hive=False)
    else:
        _dataset_view(con, "profiles", lake, found, SNAPSHOT_SCHEMA.empty_table(), None)
    con.execute(MERGED)
    con.execute(IDENTITIES)
    return con


def _events_view(con: duckdb.DuckDBPyConnection) -> None:
    """``events``: each event once (the first copy), with unmerges applied when there are any."""
    con.execute(COPIES)
    copies = con.execute("SELECT count(*) FROM _event_copies").fetchone()
    firsts = FIRSTS if copies and copies[0] else f"SELECT * FROM {RAW_EVENTS}"  # noqa: S608
    unmerges = con.execute("SELECT count(*) FROM merges WHERE kind = 'unmerge'").fetchone()
    body = UNMERGED.format(firsts=firsts, raw=RAW_EVENTS) if unmerges and unmerges[0] else firsts
    con.execute(f"CREATE VIEW events AS {body}")


def survivors(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every OneID the lake knows that is nobody else's now (the profiles worth a snapshot)."""
    return [str(v) for v in run_query(con, "SELECT DISTINCT survivor FROM identities ORDER BY 1")
            .column(0).to_pylist()]


def run_query(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """The result of ``sql`` as an Arrow table; DuckDB's message as a :class:`LakeError`."""
    try:
        relation = con.sql(sql)
        return relation.to_arrow_table() if relation is not None else pa.table({})
    except duckdb.Error as exc:
        raise LakeError(str(exc)) from None


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    return value


def render_table(result: pa.Table) -> str:
    """Aligned columns with a header, like a terminal client's."""
    names = result.column_names
    rows = [[_text(_plain(v)) for v in row.values()] for row in result.to_pylist()]
    widths = [max([_width(n), *(_width(r[i]) for r in rows)]) for i, n in enumerate(names)]
    lines = [" | ".join(_pad(n, w) for n, w in zip(names, widths, strict=True)),
             "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(_pad(c, w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines) + "\n"


def _width(text: str) -> int:
    """Terminal columns: Chinese (and other wide) characters take two, so 双十一 lines up."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * (width - _width(text))


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def write_result(result: pa.Table, fmt: str, out: IO[bytes]) -> None:
    """``result`` in ``fmt`` (table, csv, json lines, parquet) to a binary stream."""
    if fmt == "parquet":
        pq.write_table(result, out, compression="zstd")
        return
    if fmt == "table":
        out.write(render_table(result).encode())
        return
    text = io.StringIO()
    if fmt == "csv":
        writer = csv.writer(text)
        writer.writerow(result.column_names)
        for row in result.to_pylist():
            writer.writerow([_text(_plain(v)) if v is not None else "" for v in row.values()])
    elif fmt == "json":
        for row in result.to_pylist():
            text.write(json.dumps({k: _plain(v) for k, v in row.items()}, default=str, ensure_ascii=False))
            text.write("\n")
    else:
        raise LakeError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    out.write(text.getvalue().encode())
