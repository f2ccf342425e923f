"""ResolveStage on in-memory fakes: every record ends in exactly one place."""

from __future__ import annotations

from schemas.codec import default_registry
from streams.records import Record
from streams.stages.resolve import ResolveStage
from streams.testing import FakeClaims, FakeGraph, raw_event, records

REGISTRY = default_registry()


def _stage(graph: FakeGraph, claims: FakeClaims | None = None) -> ResolveStage:
    return ResolveStage(graph=graph, claims=claims or FakeClaims(), registry=REGISTRY, raw_topic="raw",
                        event_time_skew_ms=60_000)


def test_events_are_stamped_with_their_oneid_and_keyed_by_it() -> None:
    out = _stage(FakeGraph()).process(records([raw_event("m1", "a@x.io"), raw_event("m2", "a@x.io")]))
    decode = REGISTRY.decoder("event")
    assert [(k, decode(v)["oneid"]) for k, v in out.resolved] == [(b"oid-0", "oid-0"), (b"oid-0", "oid-0")]
    assert out.deadletters == [] and out.duplicates == 0


def test_bad_bytes_and_unresolvable_events_become_dead_letters_with_their_position() -> None:
    batch = [Record(0, 7, b"k", b"not avro", "raw"), *records([raw_event("m2")], first_offset=8)]
    out = _stage(FakeGraph()).process(batch)
    assert [(d.reason, d.record.offset, d.source_topic) for d in out.deadletters] == [
        ("avro_decode", 7, "raw"), ("unresolvable", 8, "raw")]
    assert out.resolved == []


def test_a_duplicate_from_another_position_is_skipped_and_a_replay_is_processed() -> None:
    stage = _stage(FakeGraph())
    first = records([raw_event("m1", "a@x.io")])
    stage.process(first)
    assert stage.process(first).duplicates == 0  # same position: a replay
    again = stage.process(records([raw_event("m1", "a@x.io")], first_offset=50))
    assert (again.duplicates, again.resolved) == (1, [])


def test_a_merge_is_produced_and_left_in_the_outbox_until_acknowledged() -> None:
    graph = FakeGraph()
    stage = _stage(graph)
    out = stage.process(records([raw_event("m1", "a@x.io"), raw_event("m2", "b@x.io"),
                                 raw_event("m3", "a@x.io", "b@x.io")]))
    assert out.merged_ids == ["oid-1"]
    merge = REGISTRY.decoder("identity_merge")(out.merges[0][1])
    assert (merge["survivor"], merge["merged"]) == ("oid-0", "oid-1")
    graph.now_s = 100.0
    merged, resent = stage.stale_merges(now_s=200.0, grace_s=30.0)
    assert merged == ["oid-1"] and len(resent) == 1  # a crash before the ack: re-sent
    stage.merges_acknowledged(out.merged_ids)
    assert stage.stale_merges(now_s=200.0) == ([], [])


def test_a_deleted_persons_event_is_counted_and_kept_nowhere() -> None:
    out = _stage(FakeGraph(suppressed={"gone@x.io"})).process(records([raw_event("m1", "gone@x.io")]))
    assert (out.suppressed, out.resolved, out.deadletters) == (1, [], [])
    assert out.rejection_reasons == {"suppressed": 1} and len(out.rejections) == 1
