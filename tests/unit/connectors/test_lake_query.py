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


def _seen(offset: int, oneid: str, at: int, *identifiers: str) -> Record:
    ids = [dict(zip(("type", "value"), i.split(":", 1), strict=True)) for i in identifiers]
    value = default_registry().encoder(EVENT)(event_record("track", T0 + at, message_id=f"u-{offset}",
                                                           oneid=oneid, event="Seen", identifiers=ids))
    return Record(0, offset, oneid.encode(), value, EVENTS)


def _unmerge(offset: int, kept: str, new: str, at: int, *moved: str) -> Record:
    ids = [dict(zip(("type", "value"), i.split(":", 1), strict=True)) for i in moved]
    record = {"survivor": kept, "merged": new, "message_id": "", "timestamp": T0 + at, "identifiers": ids,
              "reason": "operator_unmerge", "kind": "unmerge"}
    return Record(0, offset, None, default_registry().encoder(IDENTITY_MERGE)(record), MERGES)


def test_an_unmerge_moves_the_history_of_the_identifiers_it_split_off(tmp_path: Path) -> None:
    """Ann's profile wrongly took Bob's email through one store event; an operator split it off."""
    write_lake(tmp_path, [
        [_seen(0, "ann", 1, "user_id:ann"), _seen(1, "ann", 2, "phone:+861", "email:bob@x.cn"),
         _seen(2, "ann", 3, "email:bob@x.cn"), _seen(3, "ann", 4, "email:bob@x.cn", "anonymous_id:b1"),
         _seen(4, "bob", 50, "email:bob@x.cn")],
        [_unmerge(0, "ann", "bob", 10, "email:bob@x.cn", "anonymous_id:b1")],
    ])
    owners = {r["message_id"]: r["oneid"] for r in query(tmp_path, "SELECT message_id, oneid FROM events")}
    assert owners == {"u-0": "ann", "u-1": "ann",  # the linking event also carried Ann's phone: stays
                      "u-2": "bob", "u-3": "bob",  # only Bob's identifiers: his history now
                      "u-4": "bob"}  # after the split the graph stamped it right
    # the unmerge row is not a merge: bob does not follow ann
    assert query(tmp_path, "SELECT oneid, survivor FROM identities ORDER BY oneid") == [
        {"oneid": "ann", "survivor": "ann"}, {"oneid": "bob", "survivor": "bob"}]


def test_merges_written_before_the_kind_column_still_link(tmp_path: Path) -> None:
    write_lake(tmp_path, [[event(0, "a"), event(1, "b")], [merge(0, "a", "b", 10)]])
    [(path, _)] = layout.live(layout.table_files(tmp_path, "merges"))
    old = pq.read_table(path).drop_columns(["kind"])  # a file from before the schema had it
    pq.write_table(old, path)
    assert query(tmp_path, "SELECT kind FROM merges") == [{"kind": None}]
    assert query(tmp_path, "SELECT oneid, survivor FROM identities ORDER BY 1") == [
        {"oneid": "a", "survivor": "a"}, {"oneid": "b", "survivor": "a"}]


def test_the_table_format_lines_up_wide_characters() -> None:
    import pyarrow as pa

    from connectors.lake.query import render_table

    text = render_table(pa.table({"campaign": ["双十一", "spring"], "n": [1, 22]}))
    header, rule, first, second, _ = text.splitlines()
    assert first == "双十一   | 1 " and second == "spring   | 22"  # 6 columns wide, like "spring"
    assert header.index("|") == rule.index("+") == 9
