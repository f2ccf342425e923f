"""Stage metrics come from outputs, once, when the loop hands them over (after Kafka's ack)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from schemas.codec import default_registry
from streams.observer import StageObserver
from streams.stages.resolve import ResolveStage
from streams.testing import FakeClaims, FakeGraph, raw_event, records


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_processing_counts_nothing_and_observing_counts_once() -> None:
    stage = ResolveStage(graph=FakeGraph(), claims=FakeClaims(), registry=default_registry(), raw_topic="raw",
                         event_time_skew_ms=0)
    dead = ("touchstream_deadletters_total", {"stage": "resolve", "reason": "unresolvable"})
    before_dead, before_resolved = _sample(dead[0], **dead[1]), _sample("touchstream_events_resolved_total")
    out = stage.process(records([raw_event("m1"), raw_event("m2", "a@x.io")]))
    assert _sample(dead[0], **dead[1]) == before_dead  # built, not produced: not counted yet
    StageObserver().resolved(out)
    assert _sample(dead[0], **dead[1]) - before_dead == 1
    assert _sample("touchstream_events_resolved_total") - before_resolved == 1


def test_acknowledged_triggers_are_counted_and_timed_from_when_they_became_due() -> None:
    import time

    rule = "observer_test_rule"
    due_ms = int(time.time() * 1000) - 40_000  # became due 40 s ago
    StageObserver().triggers_sent([{"rule": rule, "fired_at": due_ms},
                                   {"rule": rule, "fired_at": due_ms + 10**9}])  # a client clock ahead
    assert _sample("touchstream_triggers_total", rule=rule) == 2
    assert _sample("touchstream_trigger_delay_seconds_count", rule=rule) == 2
    assert _sample("touchstream_trigger_delay_seconds_bucket", rule=rule, le="30.0") == 1  # clock ahead: 0
    assert _sample("touchstream_trigger_delay_seconds_bucket", rule=rule, le="60.0") == 2
