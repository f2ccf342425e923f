"""Compaction, the DuckDB views and the output formats on a lake written without Kafka."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from connectors.lake import layout
from connectors.lake.compact import compact
from connectors.lake.config import LakeConfig
from connectors.lake.exceptions import LakeError
from connectors.lake.query import connect, run_query, survivors, write_result
from connectors.lake.sink import LakeSink
from connectors.lake.snapshot import snapshot_profiles
from schemas.codec import EVENT, IDENTITY_MERGE, default_registry
from schemas.testing import T0, event_record
from streams.records import Record

EVENTS, MERGES = "ts.events.resolved", "ts.identity.merges"


def write_lake(root: Path, batches: list[list[Record]]) -> None:
    sink = LakeSink(LakeConfig(path=root, topic_prefix="ts", roll_bytes=1))  # a file per batch
    sink.open()
    for batch in batches:
        for record in batch:
            sink.add(record)
        for topic, partition in dict.fromkeys((r.topic, r.partition) for r in batch):
            assert sink.flush(topic, partition) == []
        sink.drop()
    sink.close()


def event(offset: int, oneid: str, partition: int = 0) -> Record:
    value = default_registry().encoder(EVENT)(event_record("track", T0 + offset, message_id=f"m-{offset}",
                                                           oneid=oneid, event="Seen"))
    return Record(partition, offset, oneid.encode(), value, EVENTS)


def merge(offset: int, survivor: str, merged: str, at: int) -> Record:
    record = {"survivor": survivor, "merged": merged, "message_id": "m", "timestamp": T0 + at,
              "reason": "email"}
    value = default_registry().encoder(IDENTITY_MERGE)(record)
    return Record(0, offset, None, value, MERGES)


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    write_lake(tmp_path, [[event(0, "a"), event(1, "b")], [event(2, "c"), event(3, "d")], [event(4, "a")],
                          [merge(0, "b", "c", 10), merge(1, "a", "b", 20)]])
    return tmp_path


def query(root: Path, sql: str) -> list[dict]:
    return run_query(connect(root), sql).to_pylist()


def test_identities_follow_merge_chains_and_keep_the_unmerged(lake: Path) -> None:
    rows = query(lake, "SELECT oneid, survivor, hops FROM identities ORDER BY oneid")
    assert rows == [{"oneid": "a", "survivor": "a", "hops": 0}, {"oneid": "b", "survivor": "a", "hops": 1},
                    {"oneid": "c", "survivor": "a", "hops": 2}, {"oneid": "d", "survivor": "d", "hops": 0}]
    assert survivors(connect(lake)) == ["a", "d"]
    per_person = query(lake, "SELECT survivor, count(*) AS n FROM events JOIN identities USING (oneid) "
                             "GROUP BY 1 ORDER BY 1")
    assert per_person == [{"survivor": "a", "n": 4}, {"survivor": "d", "n": 1}]


def test_compaction_merges_adjacent_small_files_and_keeps_every_row(lake: Path) -> None:
    before = query(lake, "SELECT * FROM events ORDER BY _offset")
    assert len(layout.table_files(lake, "events")) == 3
    done = compact(lake, small_bytes=1 << 30)
    assert (done.merged, done.written, done.rows) == (3, 1, 5)
    (only,) = layout.table_files(lake, "events")
    assert (only[1].first, only[1].last) == (0, 4)
    assert query(lake, "SELECT * FROM events ORDER BY _offset") == before


def test_a_big_file_between_small_ones_is_not_covered_by_a_merge(lake: Path) -> None:
    files = layout.table_files(lake, "events")
    middle = files[1][0].stat().st_size
    compact(lake, small_bytes=middle)  # only the files smaller than the middle one count as small
    assert len(layout.live(layout.table_files(lake, "events"))) == 3  # no run of two adjacent small files
    assert len(query(lake, "SELECT * FROM events")) == 5


def test_readers_ignore_what_an_interrupted_compaction_left(lake: Path) -> None:
    folder = layout.table_files(lake, "events")[0][0].parent
    table = pq.read_table(folder)
    everything = layout.Span(EVENTS, 0, 0, 4)
    pq.write_table(table.drop_columns(["event_date"]) if "event_date" in table.column_names else table,
                   folder / everything.file_name)  # renamed, inputs not yet deleted
    assert len(query(lake, "SELECT * FROM events")) == 5
    assert compact(lake, small_bytes=1).removed == 3


def test_an_empty_lake_has_every_view_with_its_columns(tmp_path: Path) -> None:
    assert query(tmp_path, "SELECT count(*) AS n FROM triggers") == [{"n": 0}]
    columns = [r["column_name"] for r in query(tmp_path, "DESCRIBE events")]
    assert {"message_id", "oneid", "properties", "_partition", "_offset", "event_date"} <= set(columns)
    assert query(tmp_path, "SELECT count(*) AS n FROM profiles") == [{"n": 0}]


def test_a_bad_query_is_a_lake_error_with_duckdbs_message(tmp_path: Path) -> None:
    with pytest.raises(LakeError, match="Parser Error"):
        run_query(connect(tmp_path), "SELEC 1")


def test_formats(lake: Path) -> None:
    result = run_query(connect(lake), "SELECT oneid, _offset FROM events ORDER BY _offset LIMIT 2")
    out = io.BytesIO()
    write_result(result, "csv", out)
    assert out.getvalue().decode().splitlines() == ["oneid,_offset", "a,0", "b,1"]
    out = io.BytesIO()
    write_result(result, "json", out)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [{"oneid": "a", "_offset": 0},
                                                                       {"oneid": "b", "_offset": 1}]
    out = io.BytesIO()
    write_result(result, "parquet", out)
    assert pq.read_table(io.BytesIO(out.getvalue())).to_pylist() == result.to_pylist()
    out = io.BytesIO()
    write_result(result, "table", out)
    assert out.getvalue().decode().splitlines()[-1] == "(2 rows)"


def test_the_profile_snapshot_reads_back_through_the_view(lake: Path) -> None:
    profiles = {"a": {"oneid": "a", "tier": "gold", "score": 42, "tags": ["vip"],
                      "aggregates": {"orders": 3}, "traits": {"plan": "pro"}, "last_seen": T0}}
    assert snapshot_profiles(lake, survivors(connect(lake)), profiles.get, now_ms=T0 + 1) == 1
    (row,) = query(lake, "SELECT oneid, tier, score, tags, aggregates, snapshot_at FROM profiles")
    assert row == {"oneid": "a", "tier": "gold", "score": 42.0, "tags": '["vip"]',
                   "aggregates": '{"orders": 3}', "snapshot_at": T0 + 1}


def test_an_event_the_resolve_stage_wrote_twice_is_one_row_of_events(tmp_path: Path) -> None:
    """After a crash the resolve stage may re-produce an event (new offset, same messageId)."""
    first, again = event(0, "a"), event(7, "a")
    copy = again._replace(value=first.value)  # the same event at a later offset
    write_lake(tmp_path, [[first, event(1, "a")], [copy]])
    assert query(tmp_path, "SELECT count(*) AS n FROM events_raw") == [{"n": 3}]
    rows = query(tmp_path, "SELECT message_id, _offset FROM events ORDER BY message_id")
    assert rows == [{"message_id": "m-0", "_offset": 0}, {"message_id": "m-1", "_offset": 1}]
