"""Run a sink as a process: the checkpointed loop, the sink's driver, signals and an idle stop.

Everything a sink process needs besides the sink itself, so a new sink (a Parquet lake next) is
its own folder with a :class:`~streams.sinks.Sink` or :class:`~streams.sinks.AsyncSink` class and
a few lines calling :func:`run_sink`.
"""

from __future__ import annotations

import inspect
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from streams.consumer import MAX_POLL_INTERVAL_MS, consumer_config
from streams.handlers import dead_letter_poison
from streams.observer import StageObserver
from streams.producers import BlockingProducer, producer_config
from streams.sinks import AsyncSink, AsyncSinkDriver, Sink, SinkDriver
from streams.stage_loop import StageLoop

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SinkOptions:
    """Where a sink reads from and how it batches; ``stop_after_idle_s`` ends a run when idle."""

    name: str  # the dead letters' stage, the loop's metric label, the consumer's client id
    broker: str
    group: str
    topics: tuple[str, ...]
    deadletter_topic: str
    batch_size: int = 500
    within_s: float = 0.25
    max_poll_interval_ms: int = MAX_POLL_INTERVAL_MS
    stop_after_idle_s: float | None = None


def run_sink(sink: Sink | AsyncSink, options: SinkOptions) -> None:
    """Drive ``sink`` until SIGTERM/SIGINT (or idle); blocking, in the calling thread."""
    stop = threading.Event()
    producer = BlockingProducer(producer_config(options.broker))
    observer = StageObserver()
    driver: SinkDriver | AsyncSinkDriver
    if inspect.iscoroutinefunction(sink.flush):
        driver = AsyncSinkDriver(sink, producer, options.deadletter_topic, observer)  # type: ignore[arg-type]
    else:
        driver = SinkDriver(sink, producer, options.deadletter_topic, observer)  # type: ignore[arg-type]
    idle = None if options.stop_after_idle_s is None else _IdleStop(stop, options.stop_after_idle_s, driver)
    loop = StageLoop(options.name, consumer_config(options.broker, options.group, options.name,
                                                   max_poll_interval_ms=options.max_poll_interval_ms),
                     options.topics, driver,
                     poison=dead_letter_poison(options.name, producer, options.deadletter_topic, observer),
                     batch_size=options.batch_size, within_s=options.within_s, stop=stop, tick=idle,
                     tick_every_s=options.within_s)

    def request_stop() -> None:
        stop.set()
        if isinstance(driver, AsyncSinkDriver):
            driver.stop()

    restore = _install_stop_signals(request_stop)
    try:
        if isinstance(driver, AsyncSinkDriver):
            with driver:
                loop.run()
        else:
            loop.run()
    finally:
        restore()


class _IdleStop:
    """A tick: stop once the loop held partitions and finished no batch for ``idle_s``."""

    def __init__(self, stop: threading.Event, idle_s: float | None,
                 driver: SinkDriver | AsyncSinkDriver) -> None:
        self._stop = stop
        self._idle_s = idle_s or 0.0
        self._driver = driver
        self._since = time.monotonic()

    def __call__(self, partitions: Sequence[int]) -> None:
        now = time.monotonic()
        last = max(self._since, self._driver.last_batch_at)
        if not partitions:
            self._since = now  # not in the group yet: joining is not idleness
        elif now - last >= self._idle_s:
            log.info("sink: idle for %.1fs, stopping", self._idle_s)
            self._stop.set()


def _install_stop_signals(stop: Callable[[], None]) -> Callable[[], None]:
    """SIGTERM/SIGINT call ``stop`` (main thread only); returns a function restoring the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda *_: stop())

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore
