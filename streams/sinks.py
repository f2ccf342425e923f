"""Sinks: the last step of a pipeline, driven by the same checkpointed loop as the stages.

A sink takes records with ``add`` and makes them durable downstream in ``flush(topic,
partition)``; ``StageLoop`` commits a batch's offsets only after every partition it touched was
flushed and the flushes' dead letters were acknowledged by Kafka (quixstreams' checkpoint idea).
So a new sink is one small class: buffer in ``add``, write in ``flush``, forget in ``drop``;
``streams/sink_loop.run_sink`` runs it as a process (``connectors/webhook/sink.py`` shows how).

``AsyncSink`` is the same contract for asyncio I/O (HTTP): the driver owns one event loop for
the sink's life and flushes the batch's partitions concurrently. A flush that a stop request
left unfinished raises ``streams.stage_loop.Stopped``: the loop ends without committing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Protocol

from streams.deadletters import DeadLetter, encode_dead_letters
from streams.observer import StageObserver
from streams.producers import BlockingProducer
from streams.records import Record


class Sink(Protocol):
    """A blocking sink (files, a lake)."""

    def add(self, record: Record) -> None:
        """Buffer one record (cheap: nothing is written yet)."""
        ...

    def flush(self, topic: str, partition: int) -> Sequence[DeadLetter]:
        """Write what was added for this partition; return the records that must be dead-lettered."""
        ...

    def drop(self) -> None:
        """Forget everything added and not flushed (the loop retries or isolates those records)."""
        ...


class AsyncSink(Protocol):
    """An asyncio sink (HTTP). ``open``/``close`` run on the driver's event loop; ``stopping`` is
    set there when the process is asked to stop (give up waiting, raise ``Stopped``)."""

    stopping: asyncio.Event

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    def add(self, record: Record) -> None: ...

    async def flush(self, topic: str, partition: int) -> Sequence[DeadLetter]: ...

    def drop(self) -> None: ...


def touched(batch: Sequence[Record]) -> list[tuple[str, int]]:
    """The (topic, partition) pairs of a batch, in first-seen order."""
    return list(dict.fromkeys((record.topic, record.partition) for record in batch))


class _Driver:
    def __init__(self, producer: BlockingProducer, deadletter_topic: str, observer: StageObserver) -> None:
        self._producer = producer
        self._deadletter_topic = deadletter_topic
        self._observer = observer
        #: When the last batch was flushed and its dead letters acknowledged (monotonic seconds).
        self.last_batch_at = 0.0

    def _done(self, letters: Sequence[DeadLetter]) -> None:
        if letters:
            self._producer.send_all({self._deadletter_topic: encode_dead_letters(letters)})
            self._observer.dead_lettered(letters)
        self.last_batch_at = time.monotonic()


class SinkDriver(_Driver):
    """``StageLoop``'s batch handler for a :class:`Sink`."""

    def __init__(self, sink: Sink, producer: BlockingProducer, deadletter_topic: str,
                 observer: StageObserver) -> None:
        super().__init__(producer, deadletter_topic, observer)
        self.sink = sink

    def __call__(self, batch: Sequence[Record]) -> None:
        letters: list[DeadLetter] = []
        try:
            for record in batch:
                self.sink.add(record)
            for topic, partition in touched(batch):
                letters.extend(self.sink.flush(topic, partition))
        finally:
            self.sink.drop()
        self._done(letters)


class AsyncSinkDriver(_Driver):
    """``StageLoop``'s batch handler for an :class:`AsyncSink`; a context manager (the event loop).

    ``stop`` mirrors a stop request into the sink's event loop: call it from a signal handler or
    another thread, and the sink's ``stopping`` event is set where it waits.
    """

    def __init__(self, sink: AsyncSink, producer: BlockingProducer, deadletter_topic: str,
                 observer: StageObserver) -> None:
        super().__init__(producer, deadletter_topic, observer)
        self.sink = sink
        self._runner: asyncio.Runner | None = None

    def __enter__(self) -> AsyncSinkDriver:
        self._runner = asyncio.Runner()
        self._runner.run(self.sink.open())
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._runner is not None
        try:
            self._runner.run(self.sink.close())
        finally:
            self._runner.close()
            self._runner = None

    def stop(self) -> None:
        """Ask a running flush to give up waiting (retries are abandoned, nothing is committed)."""
        runner = self._runner
        if runner is not None:
            runner.get_loop().call_soon_threadsafe(self.sink.stopping.set)

    async def _flush(self, partitions: list[tuple[str, int]]) -> list[DeadLetter]:
        flushes = (self.sink.flush(t, p) for t, p in partitions)
        results = await asyncio.gather(*flushes, return_exceptions=True)
        letters: list[DeadLetter] = []
        for result in results:  # every flush finished: none is left running into the next batch
            if isinstance(result, BaseException):
                raise result
            letters.extend(result)
        return letters

    def __call__(self, batch: Sequence[Record]) -> None:
        assert self._runner is not None, "use the driver as a context manager"
        try:
            for record in batch:
                self.sink.add(record)
            letters = self._runner.run(self._flush(touched(batch)))
        finally:
            self.sink.drop()
        self._done(letters)
