"""Every stage metric, derived from stage outputs in one place once Kafka acknowledged them.

Stages return counts as data and never touch Prometheus; the loop hands each acknowledged
output here. A batch retried after an outage is therefore counted once, and another engine
driving the same stages gets the same metrics by calling the same observer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from streams.deadletters import DeadLetter
from streams.stages.merges import MergeOutput
from streams.stages.profile import ProfileOutput
from streams.stages.resolve import ResolveOutput
from touchstream import metrics


class StageObserver:
    """Turns acknowledged stage outputs into Prometheus counters."""

    def resolved(self, out: ResolveOutput) -> None:
        if out.duplicates:
            metrics.EVENTS_DUPLICATE.labels("resolve").inc(out.duplicates)
        metrics.EVENTS_RESOLVED.inc(len(out.resolved))
        if out.suppressed:
            metrics.EVENTS_SUPPRESSED.inc(out.suppressed)
        for reason, count in out.rejection_reasons.items():
            metrics.IDENTITY_REJECTIONS.labels(reason).inc(count)
        metrics.IDENTITY_MERGES.inc(len(out.merges))
        self.dead_lettered(out.deadletters)

    def profiled(self, out: ProfileOutput) -> None:
        if out.duplicates:
            metrics.EVENTS_DUPLICATE.labels("profile").inc(out.duplicates)
        for result in out.applied:
            metrics.PROFILE_EVENTS.labels("applied").inc(result.applied)
            metrics.PROFILE_EVENTS.labels("replayed").inc(result.skipped_replayed)
            metrics.PROFILE_EVENTS.labels("late").inc(result.skipped_late)
            metrics.PROFILE_EVENTS.labels("invalid_time").inc(result.skipped_invalid)
            metrics.RULE_ERRORS.inc(result.rule_errors)
            metrics.MARKETING_SUPPRESSED.inc(result.suppressed_marketing)
        if out.erased:
            metrics.ERASED_REFUSED.labels("profile").inc(out.erased)
        self.dead_lettered(out.deadletters)

    def merged(self, out: MergeOutput) -> None:
        if out.erased:
            metrics.ERASED_REFUSED.labels("merge-profiles").inc(out.erased)
        self.dead_lettered(out.deadletters)
        self.segments_sent(out.segments)

    def segments_sent(self, changes: Sequence[dict[str, Any]]) -> None:
        """Segment entries and exits acknowledged on the segments topic, by segment."""
        for change in changes:
            metrics.SEGMENT_CHANGES.labels(change["segment"], change["type"]).inc()

    def triggers_sent(self, triggers: Sequence[dict[str, Any]]) -> None:
        """Counted, and timed from the moment each became due (its ``fired_at``, event time) to
        now, Kafka's acknowledgement: how late intent reaches downstream services."""
        now_s = time.time()
        for trigger in triggers:
            metrics.TRIGGERS.labels(trigger["rule"]).inc()
            delay_s = now_s - trigger["fired_at"] / 1000
            metrics.TRIGGER_DELAY.labels(trigger["rule"]).observe(max(0.0, delay_s))

    def dead_lettered(self, letters: Sequence[DeadLetter]) -> None:
        """Counted when produced (acknowledged), not when built."""
        for letter in letters:
            metrics.DEADLETTERS.labels(letter.stage, letter.reason).inc()
