"""The lake on a filesystem that is not the local disk: the sink's spool stays local, files are
published under their final names, readers list and read through pyarrow.

The filesystem here is pyarrow's ``SubTreeFileSystem`` over a folder: it is not the local disk to
the lake (no fsync, no Path), so every remote code path runs (listing, temporary name and move,
datasets for DuckDB). The S3 path (uploads) runs against an S3 server in
``tests/integration/test_lake_s3.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from connectors.lake import layout
from connectors.lake.compact import compact
from connectors.lake.config import LakeConfig
from connectors.lake.erase import erase_person
from connectors.lake.exceptions import LakeError
from connectors.lake.location import LakeLocation, shown, with_endpoint
from connectors.lake.query import connect, run_query
from connectors.lake.sink import LakeSink
from connectors.lake.snapshot import snapshot_profiles
from schemas.codec import EVENT, default_registry
from schemas.testing import T0, event_record
from streams.erased_letters import Person
from streams.records import Record
from tests.unit.connectors.test_lake_sink import TOPIC, batch, crash, events


def remote(tmp_path: Path, base: str = "bucket/lake") -> LakeLocation:
    (tmp_path / "store").mkdir(exist_ok=True)
    return LakeLocation(pafs.SubTreeFileSystem(str(tmp_path / "store"), pafs.LocalFileSystem()), base)


def opened(lake: LakeLocation, spool: Path, **overrides: object) -> LakeSink:
    config = LakeConfig(path="sub://bucket/lake", spool_path=spool, topic_prefix="ts", **overrides)  # type: ignore[arg-type]
    sink = LakeSink(config, lake=lake)
    sink.open()
    return sink


def positions(lake: LakeLocation, table: str = "events_raw") -> list[tuple[int, int]]:
    rows = run_query(connect(lake), f"SELECT _partition, _offset FROM {table} ORDER BY 1, 2")
    return list(zip(rows.column(0).to_pylist(), rows.column(1).to_pylist(), strict=True))


def test_the_spool_stays_local_and_the_rolled_files_are_read_back_through_pyarrow(tmp_path: Path) -> None:
    lake, spool = remote(tmp_path), tmp_path / "spool"
    sink = opened(lake, spool)
    batch(sink, events(0, range(0, 5)) + events(1, range(0, 3), day=1))
    assert sorted(p.name for p in (spool / f"{TOPIC}+0").glob("*.arrow")) == [
        "00000000000000000000+00000000000000000004.arrow"]
    assert lake.table_files("events") == []
    sink.close()
    assert positions(lake) == [(0, o) for o in range(5)] + [(1, o) for o in range(3)]
    stored = sorted(p.relative_to(tmp_path / "store").as_posix() for p in (tmp_path / "store").rglob("*")
                    if p.is_file())
    assert stored == [f"bucket/lake/events/event_date=2023-11-14/{TOPIC}+0+{0:020d}+{4:020d}.parquet",
                      f"bucket/lake/events/event_date=2023-11-15/{TOPIC}+1+{0:020d}+{2:020d}.parquet"]
    dates = run_query(connect(lake), "SELECT DISTINCT CAST(event_date AS VARCHAR) FROM events ORDER BY 1")
    assert dates.column(0).to_pylist() == ["2023-11-14", "2023-11-15"]  # the Hive column, typed DATE


def test_a_roll_cut_short_mid_upload_is_redone_under_the_same_names(tmp_path: Path) -> None:
    lake, spool = remote(tmp_path), tmp_path / "spool"
    sink = opened(lake, spool)
    batch(sink, events(0, range(0, 4), day=0) + events(0, range(4, 6), day=1))
    crash(sink)
    # the manifest was published and one of the two days' uploads done (a stale object there)
    name = f"{TOPIC}+0+{0:020d}+{5:020d}.parquet"
    day0, day1 = (f"events/event_date={d}/{name}" for d in ("2023-11-14", "2023-11-15"))
    lake.fs.create_dir(lake.join(day0.rsplit("/", 1)[0]))
    with lake.fs.open_output_stream(lake.join(day0)) as out:
        out.write(b"not what the roll writes")
    (spool / f"{TOPIC}+0" / layout.ROLL_MANIFEST).write_text(json.dumps({"files": [day0, day1]}))
    sink = opened(lake, spool)
    assert not (spool / f"{TOPIC}+0" / layout.ROLL_MANIFEST).exists()
    assert positions(lake) == [(0, o) for o in range(6)]
    batch(sink, events(0, range(0, 8)))  # the replay from the last commit: only 6 and 7 are new
    assert sink.stats.skipped == 6
    sink.close()
    assert positions(lake) == [(0, o) for o in range(8)]


def test_a_lake_out_of_reach_leaves_the_rows_in_the_spool_until_a_roll_succeeds(tmp_path: Path) -> None:
    lake, spool = remote(tmp_path), tmp_path / "spool"
    (tmp_path / "store" / "bucket").write_text("a file where the lake's folder should be")  # writes fail
    sink = opened(lake, spool, roll_bytes=1)  # every flush wants to roll
    batch(sink, events(0, range(0, 3)))  # no dead letter: the rows are durable in their segment
    assert len(list((spool / f"{TOPIC}+0").glob("*.arrow"))) == 1
    (tmp_path / "store" / "bucket").unlink()  # the lake is back
    batch(sink, events(0, range(3, 5)))
    assert list((spool / f"{TOPIC}+0").glob("*.arrow")) == []
    sink.close()
    assert positions(lake) == [(0, o) for o in range(5)]


def test_compaction_and_the_snapshot_work_on_the_remote_lake(tmp_path: Path) -> None:
    lake, spool = remote(tmp_path), tmp_path / "spool"
    sink = opened(lake, spool, roll_bytes=1)  # a file per batch
    for start in range(0, 12, 3):
        batch(sink, events(0, range(start, start + 3)))
    sink.close()
    assert len(lake.table_files("events")) == 4
    done = compact(lake, small_bytes=1 << 30, spool=spool)
    assert (done.merged, done.written, done.rows) == (4, 1, 12)
    assert [f.span for f in lake.table_files("events")] == [layout.Span(TOPIC, 0, 0, 11)]
    assert positions(lake) == [(0, o) for o in range(12)]

    profiles = {"o-1": {"oneid": "o-1", "score": 3}}
    snapshot_profiles(lake, ["o-1", "o-2"], profiles.get)
    found = run_query(connect(lake), "SELECT oneid, score FROM profiles").to_pylist()
    assert found == [{"oneid": "o-1", "score": 3.0}]


def test_erasure_rewrites_the_remote_files_without_the_persons_rows(tmp_path: Path) -> None:
    lake, spool = remote(tmp_path), tmp_path / "spool"
    encode = default_registry().encoder(EVENT)
    records = [Record(0, o, None, encode(event_record("track", T0, message_id=f"m-{o}", oneid=f"o-{o % 2}",
                                                      event="Seen")), TOPIC) for o in range(6)]
    sink = opened(lake, spool)
    batch(sink, records)
    sink.close()
    done = erase_person(lake, Person(frozenset({"o-1"})), spool=spool)
    assert (done.files_rewritten, done.rows_removed) == (1, {"events": 3})
    assert run_query(connect(lake), "SELECT DISTINCT oneid FROM events").column(0).to_pylist() == ["o-0"]
    assert [f.span for f in lake.table_files("events")] == [layout.Span(TOPIC, 0, 0, 5)]  # the same name
    assert erase_person(lake, Person(frozenset({"o-1"})), spool=spool).files_rewritten == 0
    with pytest.raises(LakeError, match="spool"):
        erase_person(lake, Person(frozenset({"o-1"})))  # the locks live in the sink's spool


def test_a_spool_apart_from_its_lake_refuses_to_feed_another(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    opened(remote(tmp_path), spool).close()
    with pytest.raises(LakeError, match="another lake"):
        opened(remote(tmp_path, "bucket/other"), spool)


def test_a_lake_url_needs_a_local_spool_and_is_shown_without_credentials() -> None:
    with pytest.raises(LakeError, match="TOUCHSTREAM_LAKE_SPOOL_PATH"):
        LakeConfig(path="s3://bucket/lake").spool_root()
    assert LakeConfig(path="file:///srv/lake").spool_root() == Path("/srv/lake/_spool")
    assert LakeConfig(path=Path("lake")).spool_root() == Path("lake/_spool")
    assert shown("s3://KEY:SECRET@bucket/lake?endpoint_override=h:1") == "s3://bucket/lake"
    assert with_endpoint("s3://bucket/lake", "http://127.0.0.1:9000") == (
        "s3://bucket/lake?endpoint_override=127.0.0.1:9000&scheme=http")
    assert with_endpoint("gs://bucket/lake", "http://127.0.0.1:9000") == "gs://bucket/lake"
    assert with_endpoint("s3://bucket/lake", "") == "s3://bucket/lake"
