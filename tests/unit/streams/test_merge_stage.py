"""MergeStage on an in-memory store: merges folded in order, bad records dead-lettered."""

from __future__ import annotations

from schemas.codec import default_registry
from streams.records import Record
from streams.stages.merges import MergeStage
from streams.testing import FakeStore, records


def _merge(survivor: str, merged: str) -> dict:
    return {"survivor": survivor, "merged": merged, "message_id": "m", "timestamp": 1, "identifiers": [],
            "reason": "shared"}


def test_merges_are_folded_in_order_and_an_undecodable_record_is_dead_lettered() -> None:
    store = FakeStore()
    store.applied["b"] = ["m1"]
    stage = MergeStage(store=store, registry=default_registry(), merges_topic="merges")
    batch = records([_merge("a", "b"), _merge("a", "c")], topic="merges", schema="identity_merge")
    out = stage.process([*batch, Record(0, 99, None, b"\x00garbage", "merges")])
    assert store.merges == [("a", "b"), ("a", "c")] and store.applied["a"] == ["m1"]
    assert out.merged == 2
    assert [(d.stage, d.reason, d.record.offset) for d in out.deadletters] == [
        ("merge-profiles", "avro_decode", 99)]


def test_an_operators_unmerge_on_the_topic_is_not_folded() -> None:
    store = FakeStore()
    stage = MergeStage(store=store, registry=default_registry(), merges_topic="merges")
    split = {**_merge("a", "new"), "kind": "unmerge", "identifiers": [{"type": "email", "value": "b@x.cn"}]}
    out = stage.process(records([_merge("a", "b"), split], topic="merges", schema="identity_merge"))
    assert store.merges == [("a", "b")] and out.merged == 1 and out.deadletters == []
