"""The stages on confluent-kafka loops: where each output goes, and what follows Kafka's ack.

Each handler is a ``BatchHandler`` (and a tick) for ``StageLoop``: process the batch with a
plain stage, produce its outputs with the loop's own producer and block until acknowledged,
then clear outboxes and let the observer count. Another engine (Faust agents) would write the
same few lines around the same stages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from streams.deadletters import DeadLetter, encode_dead_letters
from streams.failures import describe
from streams.observer import StageObserver
from streams.outbox import ScanPolicy
from streams.producers import BlockingProducer
from streams.records import Record
from streams.stage_loop import PoisonHandler
from streams.stages.merges import MergeStage
from streams.stages.profile import ProfileStage
from streams.stages.resolve import ResolveStage
from streams.topics import Topics


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def dead_letter_poison(stage: str, producer: BlockingProducer, deadletter_topic: str,
                       observer: StageObserver) -> PoisonHandler:
    """Write a record that failed alone to the dead-letter topic (reason ``processing_error``)."""

    def poison(record: Record, error: BaseException) -> None:
        letters = [DeadLetter(stage, "processing_error", describe(error), record)]
        producer.send_all({deadletter_topic: encode_dead_letters(letters)})
        observer.dead_lettered(letters)

    return poison


class _OutboxScans:
    """When to read an outbox (``streams/outbox.py``); with no policy, on every tick."""

    def __init__(self, scans: ScanPolicy | None) -> None:
        self._scans = scans

    def alive(self) -> None:
        if self._scans is not None:
            self._scans.alive(now_ms())

    def failed(self) -> None:
        if self._scans is not None:
            self._scans.failed(now_ms())

    def due(self, now: int) -> bool:
        return self._scans is None or self._scans.due(now)

    def scanned(self) -> None:
        if self._scans is not None:
            self._scans.scanned()


class ResolveHandler:
    """raw -> resolved, merges, rejections, dead letters; the tick re-sends stale merges."""

    def __init__(self, stage: ResolveStage, producer: BlockingProducer, topics: Topics,
                 observer: StageObserver, *, collect_idle: Callable[[], Any] | None = None,
                 scans: ScanPolicy | None = None) -> None:
        self._stage = stage
        self._producer = producer
        self._topics = topics
        self._observer = observer
        self._collect_idle = collect_idle
        self._scans = _OutboxScans(scans)

    def __call__(self, batch: Sequence[Record]) -> None:
        self._scans.alive()
        try:
            out = self._stage.process(batch)
            topics = self._topics
            self._producer.send_all({topics.resolved: out.resolved, topics.merges: out.merges,
                                     topics.rejections: out.rejections,
                                     topics.deadletter: encode_dead_letters(out.deadletters)})
            if out.merged_ids:
                self._stage.merges_acknowledged(out.merged_ids)
        except BaseException:
            self._scans.failed()  # the graph may have recorded merges Kafka never got
            raise
        self._observer.resolved(out)

    def tick(self, _partitions: Sequence[int]) -> None:
        """Merge records a crash kept from Kafka; then idle anonymous profiles, if configured."""
        if self._scans.due(now_ms()):
            merged, records = self._stage.stale_merges(time.time())
            if records:
                self._producer.send_all({self._topics.merges: records})
                self._stage.merges_acknowledged(merged)
            self._scans.scanned()
        if self._collect_idle is not None:
            self._collect_idle()


class ProfileHandler:
    """resolved -> profile state and triggers; the tick fires timed triggers and re-sends stale ones."""

    def __init__(self, stage: ProfileStage, producer: BlockingProducer, topics: Topics,
                 observer: StageObserver, *, scans: ScanPolicy | None = None) -> None:
        self._stage = stage
        self._producer = producer
        self._topics = topics
        self._observer = observer
        self._scans = _OutboxScans(scans)

    def _emit(self, triggers: Sequence[dict[str, Any]], letters: Sequence[DeadLetter] = (),
              segments: Sequence[dict[str, Any]] = (),
              rejections: Sequence[tuple[bytes | None, bytes]] = ()) -> None:
        if triggers or letters or segments or rejections:
            stage = self._stage
            self._producer.send_all({self._topics.triggers: [stage.encode(t) for t in triggers],
                                     self._topics.segments: [stage.encode_segment(c) for c in segments],
                                     self._topics.deadletter: encode_dead_letters(letters),
                                     self._topics.rejections: list(rejections)})
            stage.sent(triggers, segments)
            self._observer.triggers_sent(triggers)
            self._observer.segments_sent(segments)

    def __call__(self, batch: Sequence[Record]) -> None:
        self._scans.alive()
        try:
            out = self._stage.process(batch, now_ms())
            self._emit(out.triggers, out.deadletters, out.segments, out.rejections)
        except BaseException:
            self._scans.failed()  # the store may have confirmed triggers Kafka never got
            raise
        self._observer.profiled(out)

    def tick(self, partitions: Sequence[int]) -> None:
        """Timed triggers (dwell without follow-up, inactivity, post-purchase care) and segment
        re-checks by the clock, and outbox entries a crash or a failed attempt left (triggers: when
        a scan is due; segment changes: every tick, deletions leave theirs there)."""
        if not partitions:
            return
        now = now_ms()
        scanning = self._scans.due(now)
        try:
            swept = self._stage.sweep(now, partitions)
            stale = self._stage.resend_stale(now) if scanning else []
            segments = swept.segments + self._stage.resend_stale_segments(now)
            self._emit(swept.triggers + stale, segments=segments)
        except BaseException:
            self._scans.failed()
            raise
        if scanning:
            self._scans.scanned()


class MergeHandler:
    """merges -> the merged profile folded into the survivor's; segment changes to their topic
    (rejections: merges naming erased people)."""

    def __init__(self, stage: MergeStage, producer: BlockingProducer, topics: Topics,
                 observer: StageObserver) -> None:
        self._stage = stage
        self._producer = producer
        self._topics = topics
        self._observer = observer

    def __call__(self, batch: Sequence[Record]) -> None:
        out = self._stage.process(batch, now_ms())
        if out.deadletters or out.segments or out.rejections:
            changes = [self._stage.encode_segment(c) for c in out.segments]
            self._producer.send_all({self._topics.deadletter: encode_dead_letters(out.deadletters),
                                     self._topics.segments: changes,
                                     self._topics.rejections: out.rejections})
            self._stage.sent(out.segments)
        self._observer.merged(out)

