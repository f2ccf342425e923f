"""The lake sink without Kafka: segments before commit, rolls by size and age, exactly once on replay."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from connectors.lake import layout
from connectors.lake.config import LakeConfig
from connectors.lake.exceptions import LakeError
from connectors.lake.sink import LakeSink
from schemas.codec import EVENT, IDENTITY_MERGE, default_registry
from schemas.testing import T0, event_record
from streams.records import Record

TOPIC = "ts.events.resolved"
DAY = 86_400_000


def events(partition: int, offsets: range, *, day: int = 0) -> list[Record]:
    encode = default_registry().encoder(EVENT)
    return [Record(partition, o, None, encode(event_record(
        "track", T0 + day * DAY, message_id=f"m-{partition}-{o}", oneid="o-1", event="Seen")), TOPIC)
        for o in offsets]


def opened(root: Path, **overrides: object) -> LakeSink:
    sink = LakeSink(LakeConfig(path=root, topic_prefix="ts", **overrides))  # type: ignore[arg-type]
    sink.open()
    return sink


def crash(sink: LakeSink) -> None:
    """What SIGKILL leaves: nothing rolled, the lock released by the kernel."""
    sink._stop.set()
    assert sink._lock_file is not None
    sink._lock_file.close()


def batch(sink: LakeSink, records: list[Record]) -> None:
    """What the sink driver does with one batch."""
    for record in records:
        sink.add(record)
    for topic, partition in dict.fromkeys((r.topic, r.partition) for r in records):
        assert sink.flush(topic, partition) == []
    sink.drop()


def lake_rows(root: Path, table: str = "events") -> list[tuple[int, int]]:
    positions = []
    for path, _ in layout.live(layout.table_files(root, table)):
        t = pq.ParquetFile(path).read(columns=["_partition", "_offset"])
        columns = t.column("_partition").to_pylist(), t.column("_offset").to_pylist()
        positions += list(zip(*columns, strict=True))
    return sorted(positions)


def test_a_flush_is_durable_in_the_spool_and_a_clean_stop_rolls_it(tmp_path: Path) -> None:
    sink = opened(tmp_path)
    batch(sink, events(0, range(0, 5)) + events(1, range(0, 3)))
    assert sorted(p.name for p in (tmp_path / "_spool" / f"{TOPIC}+0").glob("*.arrow")) == [
        "00000000000000000000+00000000000000000004.arrow"]
    assert lake_rows(tmp_path) == []  # not rolled yet: 128 MB or 60 s
    sink.close()
    assert lake_rows(tmp_path) == [(0, o) for o in range(5)] + [(1, o) for o in range(3)]
    assert list((tmp_path / "_spool" / f"{TOPIC}+0").glob("*.arrow")) == []


def test_rows_land_in_the_folder_of_their_event_date(tmp_path: Path) -> None:
    sink = opened(tmp_path)
    batch(sink, events(0, range(0, 2), day=0) + events(0, range(2, 3), day=1))
    sink.close()
    folders = sorted(p.parent.name for p, _ in layout.table_files(tmp_path, "events"))
    assert folders == ["event_date=2023-11-14", "event_date=2023-11-15"]
    names = {p.name for p, _ in layout.table_files(tmp_path, "events")}
    assert names == {f"{TOPIC}+0+{0:020d}+{2:020d}.parquet"}  # one roll, one name, a file per day


def test_a_replay_after_a_crash_is_skipped_not_written_twice(tmp_path: Path) -> None:
    sink = opened(tmp_path)
    batch(sink, events(0, range(0, 10)))
    crash(sink)  # the offsets of that batch were never committed: Kafka replays them
    sink = opened(tmp_path)
    batch(sink, events(0, range(0, 15)))
    assert sink.stats.skipped == 10
    sink.close()
    assert lake_rows(tmp_path) == [(0, o) for o in range(15)]


def test_rolls_by_size_and_by_age(tmp_path: Path) -> None:
    sink = opened(tmp_path, roll_bytes=1, roll_s=3600.0)
    batch(sink, events(0, range(0, 3)))
    assert len(layout.table_files(tmp_path, "events")) == 1  # over 1 byte: rolled in the flush
    crash(sink)
    sink = opened(tmp_path, roll_s=60.0)
    batch(sink, events(0, range(3, 6)))
    sink.roll_aged(now=sink._spools[(TOPIC, 0)].started_at + 59)  # type: ignore[operator]
    assert len(layout.table_files(tmp_path, "events")) == 1
    sink.roll_aged(now=sink._spools[(TOPIC, 0)].started_at + 60)  # type: ignore[operator]
    assert len(layout.table_files(tmp_path, "events")) == 2
    crash(sink)
    assert lake_rows(tmp_path) == [(0, o) for o in range(6)]


def test_an_interrupted_roll_is_redone_under_the_same_names(tmp_path: Path) -> None:
    sink = opened(tmp_path)
    batch(sink, events(0, range(0, 4), day=0) + events(0, range(4, 6), day=1))
    spool = sink._spools[(TOPIC, 0)]
    crash(sink)
    # a crash after the manifest and the first rename: one of the two days' files exists
    name = f"{TOPIC}+0+{0:020d}+{5:020d}.parquet"
    day0 = layout.date_dir(tmp_path, "events", "2023-11-14") / name
    day1 = layout.date_dir(tmp_path, "events", "2023-11-15") / name
    day0.parent.mkdir(parents=True)
    day0.write_bytes(b"half written elsewhere")
    (spool.folder / layout.ROLL_MANIFEST).write_text(json.dumps(
        {"files": [str(day0.relative_to(tmp_path)), str(day1.relative_to(tmp_path))]}))
    sink = opened(tmp_path)
    assert not (spool.folder / layout.ROLL_MANIFEST).exists()
    assert lake_rows(tmp_path) == [(0, o) for o in range(6)]
    batch(sink, events(0, range(0, 8)))  # the replay from the last commit
    sink.close()
    assert lake_rows(tmp_path) == [(0, o) for o in range(8)]


def test_a_finished_roll_whose_segments_were_not_all_deleted_is_finished(tmp_path: Path) -> None:
    sink = opened(tmp_path)
    batch(sink, events(0, range(0, 3)))
    batch(sink, events(0, range(3, 5)))
    spool = sink._spools[(TOPIC, 0)]
    segments = sorted(spool.folder.glob("*.arrow"))
    sink.close()
    # put back what a crash between the renames and the deletions leaves: a segment and the manifest
    files = [str(p.relative_to(tmp_path)) for p, _ in layout.table_files(tmp_path, "events")]
    segments[1].write_bytes(b"stale")
    (spool.folder / layout.ROLL_MANIFEST).write_text(json.dumps({"files": files}))
    sink = opened(tmp_path)
    assert list(spool.folder.glob("*.arrow")) == []
    sink.close()
    assert lake_rows(tmp_path) == [(0, o) for o in range(5)]


def test_undecodable_records_are_dead_lettered_and_the_rest_written(tmp_path: Path) -> None:
    sink = opened(tmp_path)
    good = events(0, range(0, 2))
    sink.add(good[0])
    sink.add(Record(0, 1, None, b"garbage", TOPIC))
    letters = sink.flush(TOPIC, 0)
    assert [(d.reason, d.record.offset) for d in letters] == [("bad_marker", 1)]
    sink.close()
    assert lake_rows(tmp_path) == [(0, 0)]


def test_each_topic_has_its_table(tmp_path: Path) -> None:
    merge = default_registry().encoder(IDENTITY_MERGE)({"survivor": "o-1", "merged": "o-2", "message_id": "m",
                                                        "timestamp": T0, "reason": "email"})
    sink = opened(tmp_path)
    batch(sink, [Record(2, 7, None, merge, "ts.identity.merges")])
    sink.close()
    assert lake_rows(tmp_path, "merges") == [(2, 7)]


def test_one_sink_per_lake_folder(tmp_path: Path) -> None:
    sink = opened(tmp_path)
    with pytest.raises(LakeError, match="another lake sink"):
        opened(tmp_path)
    sink.close()
