"""MergeStage on an in-memory store: merges folded in order, bad records dead-lettered, segments follow."""

from __future__ import annotations

from schemas.codec import default_registry
from streams.records import Record
from streams.stages.merges import MergeStage
from streams.testing import FakeStore, records

NOW = 1_700_000_100_000


def _merge(survivor: str, merged: str) -> dict:
    return {"survivor": survivor, "merged": merged, "message_id": "m", "timestamp": 1, "identifiers": [],
            "reason": "shared"}


def _stage(store: FakeStore) -> MergeStage:
    return MergeStage(store=store, registry=default_registry(), merges_topic="merges",
                      segment_outbox=store.segment_outbox)


def test_merges_are_folded_in_order_and_an_undecodable_record_is_dead_lettered() -> None:
    store = FakeStore()
    store.applied["b"] = ["m1"]
    stage = _stage(store)
    batch = records([_merge("a", "b"), _merge("a", "c")], topic="merges", schema="identity_merge")
    out = stage.process([*batch, Record(0, 99, None, b"\x00garbage", "merges")], NOW)
    assert store.merges == [("a", "b"), ("a", "c")] and store.applied["a"] == ["m1"]
    assert out.merged == 2
    assert [(d.stage, d.reason, d.record.offset) for d in out.deadletters] == [
        ("merge-profiles", "avro_decode", 99)]


def test_an_operators_unmerge_on_the_topic_is_not_folded() -> None:
    store = FakeStore()
    stage = _stage(store)
    split = {**_merge("a", "new"), "kind": "unmerge", "identifiers": [{"type": "email", "value": "b@x.cn"}]}
    out = stage.process(records([_merge("a", "b"), split], topic="merges", schema="identity_merge"), NOW)
    assert store.merges == [("a", "b")] and out.merged == 1 and out.deadletters == []


def test_a_merged_member_exits_the_survivor_is_evaluated_and_both_wait_until_sent() -> None:
    store = FakeStore()
    store.members.add("b")
    stage = _stage(store)
    out = stage.process(records([_merge("a", "b")], topic="merges", schema="identity_merge"), NOW)
    assert [(c["oneid"], c["type"], c["reason"]) for c in out.segments] == [
        ("b", "segment_exited", "merged"), ("a", "segment_entered", "merge")]
    key, value = stage.encode_segment(out.segments[0])
    assert key == b"b" and default_registry().decoder("segment_change")(value) == out.segments[0]
    assert store.segment_outbox.stale(NOW + 31_000, 30_000) == out.segments  # not acknowledged yet
    stage.sent(out.segments)
    assert store.segment_outbox.stale(NOW + 31_000, 30_000) == []


def test_a_merge_naming_an_erased_oneid_is_refused_and_becomes_a_rejection() -> None:
    store = FakeStore()
    store.erased = {"gone"}
    stage = _stage(store)
    out = stage.process(records([_merge("gone", "b"), _merge("a", "c")], topic="merges",
                                schema="identity_merge"), NOW)
    assert store.merges == [("a", "c")] and (out.merged, out.erased) == (1, 1)
    [(key, value)] = out.rejections
    rejection = default_registry().decoder("identity_rejection")(value)
    assert key == b"b"
    assert (rejection["oneid"], rejection["reason"], rejection["value_hash"]) == ("b", "erased", "")
