"""When a loop reads its outbox: at start, after its own failure, after a peer died; not every tick."""

from __future__ import annotations

from unittest import mock

import pytest

from schemas.codec import default_registry
from streams import handlers
from streams.handlers import ProfileHandler
from streams.observer import StageObserver
from streams.outbox import ScanPolicy
from streams.stages.profile import ProfileStage
from streams.testing import FakeClaims, FakeHeartbeats, FakeStore, raw_event, records
from streams.topics import Topics

GRACE = 30_000


def test_a_healthy_loop_scans_once_at_start_then_only_beats() -> None:
    policy = ScanPolicy(FakeHeartbeats(), GRACE)
    assert policy.due(1_000)
    policy.scanned()
    assert not any(policy.due(1_000 + t * 1_000) for t in range(100))


def test_a_failure_makes_a_scan_due_once_its_entries_can_be_stale() -> None:
    policy = ScanPolicy(FakeHeartbeats(), GRACE)
    policy.due(0)
    policy.scanned()
    policy.failed(10_000)
    assert not policy.due(39_000)
    assert policy.due(40_000)
    policy.failed(45_000)  # another failure before the scan: its entries are not stale yet
    policy.scanned()
    assert not policy.due(70_000)
    assert policy.due(75_000)
    policy.scanned()
    assert not policy.due(80_000)


def test_a_dead_peer_is_scanned_for_until_everything_it_wrote_is_stale() -> None:
    beats = FakeHeartbeats()
    peer, me = ScanPolicy(beats, GRACE, "peer"), ScanPolicy(beats, GRACE, "me")
    peer.alive(0)  # then SIGKILL
    me.due(0)
    me.scanned()
    assert not me.due(GRACE)
    assert me.due(GRACE + 1)
    me.scanned()
    assert "peer" in beats.last  # it may have written until its death: keep looking
    assert me.due(2 * GRACE + 1)
    me.scanned()
    assert "peer" not in beats.last and not me.due(2 * GRACE + 2)


def test_alive_beats_at_most_once_a_second() -> None:
    beats = FakeHeartbeats()
    policy = ScanPolicy(beats, GRACE)
    for t in range(0, 5_000, 100):
        policy.alive(t)
    assert beats.beats == 5


class FailingProducer:
    def __init__(self) -> None:
        self.fail = False
        self.sent: list[dict] = []

    def send_all(self, batches: dict) -> None:
        if self.fail:
            raise ConnectionError("broker unreachable")
        self.sent.append(batches)


def _handler(store: FakeStore) -> tuple[ProfileHandler, FailingProducer]:
    """The profile stage's handler on ``store``, producing through a producer that can fail."""
    stage = ProfileStage(store=store, claims=FakeClaims(), outbox=store.outbox,
                         segment_outbox=store.segment_outbox, registry=default_registry(),
                         resolved_topic="resolved")
    producer = FailingProducer()
    handler = ProfileHandler(stage, producer, Topics("t"), StageObserver(),  # type: ignore[arg-type]
                             scans=ScanPolicy(FakeHeartbeats(), GRACE))
    return handler, producer


def test_a_trigger_whose_send_failed_is_resent_by_the_tick_after_the_grace() -> None:
    store = FakeStore(fires=lambda event: True)
    handler, producer = _handler(store)
    clock = iter(range(0, 10_000_000, 1_000))
    with mock.patch.object(handlers, "now_ms", lambda: next(clock)):
        handler.tick([0])  # start: one scan
        producer.fail = True
        with pytest.raises(ConnectionError):
            handler(records([raw_event("m1", oneid="p1")]))
        producer.fail = False
        scans = store.outbox.scans
        for _ in range(20):
            handler.tick([0])
        assert store.outbox.scans == scans and len(store.outbox.entries) == 1  # not yet stale
        for _ in range(40):
            handler.tick([0])
        assert store.outbox.entries == {} and store.outbox.scans == scans + 1


def test_a_segment_change_whose_send_failed_is_resent_by_a_later_tick() -> None:
    store = FakeStore(enters=lambda event: True)
    handler, producer = _handler(store)
    clock = iter(range(1_700_000_000_000, 1_800_000_000_000, 1_000))
    with mock.patch.object(handlers, "now_ms", lambda: next(clock)):
        producer.fail = True
        with pytest.raises(ConnectionError):
            handler(records([raw_event("m1", oneid="p1")]))
        producer.fail = False
        handler(records([raw_event("m1", oneid="p1")]))  # the retry replays: nothing new recorded
        assert len(store.segment_outbox.entries) == 1
        for _ in range(40):
            handler.tick([0])
    sent = [value for batch in producer.sent for key, value in batch["t.segments"]]
    assert len(sent) == 1 and store.segment_outbox.entries == {}
