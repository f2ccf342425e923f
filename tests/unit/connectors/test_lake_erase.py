"""Erasure in the lake without Kafka: the person's rows leave every file under the same name,
every other row keeps its values, the spool is rewritten or left to a running sink's rolls."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from connectors.lake import layout, locks
from connectors.lake.config import LakeConfig
from connectors.lake.erase import RollFilter, erase_person
from connectors.lake.exceptions import LakeError
from connectors.lake.rows import TABLES
from connectors.lake.sink import LakeSink
from connectors.lake.snapshot import SNAPSHOT_SCHEMA
from schemas.codec import EVENT, IDENTITY_MERGE, IDENTITY_REJECTION, TRIGGER, default_registry
from schemas.testing import T0, event_record
from streams.erased_letters import Person
from streams.records import Record

REGISTRY = default_registry()
DAY = 86_400_000
ANN, ANN_OLD, BOB, CAROL = "o_ann", "o_ann_old", "o_bob", "o_carol"  # ANN_OLD was merged into ANN
ANN_PHONE = "phone:" + hashlib.sha256(b"+8613912345678").hexdigest()
ANN_PERSON = Person(frozenset({ANN}), frozenset({ANN_PHONE}))


def _records(suffix: str, schema: str, rows: list[dict[str, Any]], partition: int = 0) -> list[Record]:
    encode = REGISTRY.encoder(schema)
    return [Record(partition, offset, None, encode(row), f"ts.{suffix}") for offset, row in enumerate(rows)]


def _events() -> list[Record]:
    rows = [event_record("track", T0 + (i % 3) * DAY, message_id=f"e{i}", oneid=oneid, event="Seen",
                         traits={"email": f"{oneid}@example.cn"})
            for i, oneid in enumerate([ANN, BOB, ANN_OLD, CAROL, ANN, BOB, BOB])]
    return _records("events.resolved", EVENT, rows[:4], 0) + [
        Record(1, r.offset, None, r.value, r.topic) for r in _records("events.resolved", EVENT, rows[4:], 1)]


def _merges() -> list[Record]:
    return _records("identity.merges", IDENTITY_MERGE, [
        {"survivor": ANN, "merged": ANN_OLD, "message_id": "e2", "timestamp": T0,
         "identifiers": [{"type": "email", "value": "ann@example.cn"}], "reason": "shared:email"},
        {"survivor": BOB, "merged": "o_bob_old", "message_id": "e5", "timestamp": T0, "identifiers": [],
         "reason": "shared:email"}])


def _rejections() -> list[Record]:
    kind, value_hash = ANN_PHONE.split(":")
    return _records("identity.rejections", IDENTITY_REJECTION, [
        {"oneid": None, "type": kind, "value_hash": value_hash, "reason": "suppressed", "message_id": "r0",
         "timestamp": T0},
        {"oneid": BOB, "type": "phone", "value_hash": "f" * 64, "reason": "limit:phone", "message_id": "r1",
         "timestamp": T0},
        {"oneid": ANN, "type": "email", "value_hash": "e" * 64, "reason": "limit:email", "message_id": "r2",
         "timestamp": T0}])


def _triggers() -> list[Record]:
    return _records("triggers", TRIGGER, [
        {"rule": "demo", "oneid": oneid, "idempotency_key": f"demo:{i}", "event_time": T0, "fired_at": T0,
         "message_id": f"e{i}", "marketing": False, "values": "{}"} for i, oneid in enumerate([ANN, CAROL])])


def _lake(root: Path, keep: RollFilter | None = None, *, close: bool = True) -> LakeSink:
    sink = LakeSink(LakeConfig(path=root, topic_prefix="ts"), keep=keep)
    sink.open()
    records = _events() + _merges() + _rejections() + _triggers()
    for record in records:
        sink.add(record)
    for topic, partition in dict.fromkeys((r.topic, r.partition) for r in records):
        assert sink.flush(topic, partition) == []
    if close:
        sink.close()
    return sink


def _snapshot(root: Path) -> None:
    rows = [{"oneid": oneid, "snapshot_at": T0, "tier": "A"} for oneid in (ANN, BOB)]
    path = root / layout.PROFILES / layout.SNAPSHOT
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SNAPSHOT_SCHEMA), path)


def _files(root: Path) -> dict[str, set[str]]:
    return {spec.name: {str(p.relative_to(root)) for p, _ in layout.table_files(root, spec.name)}
            for spec in TABLES}


def _rows(root: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table (and the snapshot), as values, in a stable order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for spec in TABLES:
        paths = [path for path, _ in layout.table_files(root, spec.name)]
        rows = [row for path in paths for row in pq.read_table(path).to_pylist()]
        out[spec.name] = sorted(rows, key=lambda r: (r["_partition"], r["_offset"]))
    snapshot = root / layout.PROFILES / layout.SNAPSHOT
    out["profiles"] = pq.read_table(snapshot).to_pylist() if snapshot.exists() else []
    return out


def _of_ann(table: str, row: dict[str, Any]) -> bool:
    names = {row.get(c) for c in ("oneid", "survivor", "merged")}
    return bool(names & {ANN, ANN_OLD}) or f"{row.get('type')}:{row.get('value_hash')}" == ANN_PHONE


def test_the_persons_rows_leave_every_file_names_and_other_rows_unchanged(tmp_path: Path) -> None:
    _lake(tmp_path)
    _snapshot(tmp_path)
    names, before = _files(tmp_path), _rows(tmp_path)
    done = erase_person(tmp_path, ANN_PERSON)
    after = _rows(tmp_path)
    assert _files(tmp_path) == names  # rewritten in place: the offset-range names stay
    for table, rows in before.items():
        assert after[table] == [row for row in rows if not _of_ann(table, row)], table
    assert done.rows_removed == {"events": 3, "merges": 1, "rejections": 2, "triggers": 1, "profiles": 1}
    assert done.oneids == 2 and done.spool == "clean"  # ANN_OLD found through the identities view
    assert not list(tmp_path.rglob("*.tmp"))
    again = erase_person(tmp_path, ANN_PERSON)  # idempotent: a resumed erasure finds nothing
    assert (again.files_rewritten, again.rows_removed) == (0, {})
    assert _rows(tmp_path) == after


def test_a_file_left_without_rows_keeps_its_name_and_reads_empty(tmp_path: Path) -> None:
    _lake(tmp_path)
    triggers = [p for p, _ in layout.table_files(tmp_path, "triggers")]
    erase_person(tmp_path, Person(frozenset({ANN, CAROL})))
    assert [p for p, _ in layout.table_files(tmp_path, "triggers")] == triggers
    assert sum(pq.read_table(p).num_rows for p in triggers) == 0


def test_spool_segments_are_rewritten_when_no_sink_runs(tmp_path: Path) -> None:
    sink = _lake(tmp_path, close=False)
    sink._stop.set()  # what SIGKILL leaves: segments, no roll, the lock released with the process
    assert sink._lock_file is not None
    sink._lock_file.close()
    segments = sorted(p.relative_to(tmp_path) for p in (tmp_path / layout.SPOOL).rglob("*.arrow"))
    # no file holds the merge yet, so the alias comes from the erasure record, as the service passes it
    done = erase_person(tmp_path, Person(frozenset({ANN, ANN_OLD}), frozenset({ANN_PHONE})))
    # events of both partitions, merges, rejections, triggers
    assert done.spool == "rewritten" and done.segments_rewritten == 5
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / layout.SPOOL).rglob("*.arrow")) == segments
    restarted = LakeSink(LakeConfig(path=tmp_path, topic_prefix="ts"))
    restarted.open()
    restarted.close()
    assert not any(_of_ann(t, row) for t, rows in _rows(tmp_path).items() for row in rows)
    assert len(_rows(tmp_path)["events"]) == 4


def test_a_running_sink_keeps_its_spool_and_filters_every_roll(tmp_path: Path) -> None:
    erased = Person(frozenset(), frozenset())
    sink = _lake(tmp_path, RollFilter(lambda: erased), close=False)
    done = erase_person(tmp_path, ANN_PERSON)
    assert done.spool == "deferred" and done.segments_rewritten == 0
    erased = Person(frozenset({ANN, ANN_OLD}), frozenset({ANN_PHONE}))  # the tombstones the erasure wrote
    sink.close()  # rolls everything through the filter
    rows = _rows(tmp_path)
    assert not any(_of_ann(t, row) for t, rows_ in rows.items() for row in rows_)
    assert [r["message_id"] for r in rows["events"]] == ["e1", "e3", "e5", "e6"]


def test_an_erasure_waits_for_the_files_lock_and_gives_up_after_its_timeout(tmp_path: Path) -> None:
    _lake(tmp_path)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with locks.held(tmp_path / layout.SPOOL, locks.FILES_LOCK):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(5)
    with pytest.raises(LakeError, match="locked"):
        erase_person(tmp_path, ANN_PERSON, lock_timeout_s=0.2)
    release.set()
    thread.join()
    assert erase_person(tmp_path, ANN_PERSON, lock_timeout_s=5).rows_removed["events"] == 3


def test_no_lake_folder_is_reported_not_created(tmp_path: Path) -> None:
    done = erase_person(tmp_path / "none", ANN_PERSON)
    assert done.skipped and not (tmp_path / "none").exists()


def _split_lake(root: Path) -> None:
    """ANN's history: e0 (u1 + email), e1 (email only), e2 (u1); then an operator split the email off
    into o_split: the events view gives e1, whose identifiers all moved, to o_split."""
    ids = {"e0": [("user_id", "u1"), ("email", "x@example.cn")], "e1": [("email", "x@example.cn")],
           "e2": [("user_id", "u1")]}
    rows = [event_record("track", T0, message_id=mid, oneid=ANN, event="Seen",
                         identifiers=[{"type": t, "value": v} for t, v in idents])
            for mid, idents in ids.items()]
    split = {"survivor": ANN, "merged": "o_split", "message_id": "", "timestamp": T0 + DAY,
             "identifiers": [{"type": "email", "value": "x@example.cn"}], "reason": "unmerge",
             "kind": "unmerge"}
    sink = LakeSink(LakeConfig(path=root, topic_prefix="ts"))
    sink.open()
    records = _records("events.resolved", EVENT, rows) + _records("identity.merges", IDENTITY_MERGE, [split])
    for record in records:
        sink.add(record)
    for topic, partition in dict.fromkeys((r.topic, r.partition) for r in records):
        assert sink.flush(topic, partition) == []
    sink.close()


def test_events_follow_an_unmerge_the_split_person_takes_theirs(tmp_path: Path) -> None:
    _split_lake(tmp_path)
    erase_person(tmp_path, Person(frozenset({"o_split"})))
    assert [r["message_id"] for r in _rows(tmp_path)["events"]] == ["e0", "e2"]


def test_events_follow_an_unmerge_the_survivor_keeps_what_moved_away(tmp_path: Path) -> None:
    _split_lake(tmp_path)
    erase_person(tmp_path, Person(frozenset({ANN})))
    assert [r["message_id"] for r in _rows(tmp_path)["events"]] == ["e1"]
