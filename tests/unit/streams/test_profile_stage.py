"""ProfileStage on in-memory fakes: dedup, per-partition apply, the trigger outbox."""

from __future__ import annotations

from schemas.codec import default_registry
from streams.stages.profile import ProfileStage
from streams.testing import FakeClaims, FakeStore, raw_event, records, segment_change, trigger_of

REGISTRY = default_registry()
NOW = 1_700_000_100_000


def _stage(store: FakeStore) -> ProfileStage:
    return ProfileStage(store=store, claims=FakeClaims(), outbox=store.outbox,
                        segment_outbox=store.segment_outbox, registry=REGISTRY, resolved_topic="resolved")


def test_events_are_applied_per_partition_and_replays_are_skipped_by_the_store() -> None:
    store = FakeStore()
    stage = _stage(store)
    batch = records([raw_event("m1", oneid="p1")], partition=0) + records(
        [raw_event("m2", oneid="p2")], partition=1)
    out = stage.process(batch, NOW)
    assert dict(store.applied) == {"p1": ["m1"], "p2": ["m2"]}
    assert [r.applied for r in out.applied] == [1, 1]
    replay = stage.process(batch, NOW)  # same positions: claims let them through, the store skips them
    assert [r.skipped_replayed for r in replay.applied] == [1, 1]


def test_a_reproduced_event_at_a_new_offset_is_a_duplicate() -> None:
    stage = _stage(FakeStore())
    stage.process(records([raw_event("m1", oneid="p1")]), NOW)
    out = stage.process(records([raw_event("m1", oneid="p1")], first_offset=9), NOW)
    assert (out.duplicates, out.applied) == (1, [])


def test_triggers_wait_in_the_outbox_until_sent_and_stale_ones_are_resent() -> None:
    store = FakeStore(fires=lambda event: event["event"] == "Demo Requested")
    stage = _stage(store)
    out = stage.process(records([raw_event("m1", oneid="p1", event="Demo Requested"),
                                 raw_event("m2", oneid="p1")]), NOW)
    assert [t["message_id"] for t in out.triggers] == ["m1"]
    key, value = stage.encode(out.triggers[0])
    assert key == b"p1" and REGISTRY.decoder("trigger")(value)["rule"] == "demo_requested"
    assert stage.resend_stale(NOW + 31_000) == out.triggers  # never acknowledged: re-sent after the grace
    stage.sent(out.triggers)
    assert stage.resend_stale(NOW + 31_000) == []


def test_the_sweep_returns_what_the_store_fired_by_the_clock() -> None:
    store = FakeStore()
    due = [trigger_of(raw_event("m9", oneid="p9"), NOW)]
    store.due = list(due)
    stage = _stage(store)
    assert stage.sweep(NOW, [0, 1]).triggers == due
    assert stage.resend_stale(NOW + 31_000) == due  # in the outbox like any fired trigger


def test_segment_changes_go_with_the_batch_and_wait_in_their_outbox_until_sent() -> None:
    store = FakeStore(enters=lambda event: event["event"] == "Demo Requested")
    stage = _stage(store)
    batch = records([raw_event("m1", oneid="p1", event="Demo Requested"), raw_event("m2", oneid="p1")])
    out = stage.process(batch, NOW)
    assert [(c["oneid"], c["type"]) for c in out.segments] == [("p1", "segment_entered")]
    key, value = stage.encode_segment(out.segments[0])
    assert key == b"p1" and REGISTRY.decoder("segment_change")(value)["segment"] == "hot_leads"
    assert stage.process(batch, NOW).segments == []  # a replay records nothing
    assert stage.resend_stale_segments(NOW + 31_000) == out.segments
    stage.sent([], out.segments)
    assert stage.resend_stale_segments(NOW + 31_000) == []


def test_the_sweep_returns_segment_members_whose_recheck_came() -> None:
    store = FakeStore()
    store.segments_due = [segment_change("p9", entered=False, reason="time", changed_at=NOW)]
    stage = _stage(store)
    out = stage.sweep(NOW, [0])
    assert (out.triggers, [c["oneid"] for c in out.segments]) == ([], ["p9"])


def test_events_of_an_erased_person_are_refused_and_become_rejections() -> None:
    store = FakeStore()
    store.erased = {"gone"}
    out = _stage(store).process(records([raw_event("m1", oneid="gone"), raw_event("m2", oneid="p1")]), NOW)
    assert dict(store.applied) == {"p1": ["m2"]} and out.erased == 1
    [(key, value)] = out.rejections
    rejection = REGISTRY.decoder("identity_rejection")(value)
    assert key == b"gone" and (rejection["oneid"], rejection["reason"], rejection["message_id"]) == (
        "gone", "erased", "m1")
