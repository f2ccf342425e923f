"""run_sink's idle stop: joining the group is not idleness; no finished batch for idle_s is."""

from __future__ import annotations

import threading
from unittest import mock

from streams import sink_loop
from streams.sink_loop import _IdleStop


class Driver:
    last_batch_at = 0.0


def test_idle_counts_from_the_assignment_or_the_last_batch() -> None:
    stop, driver = threading.Event(), Driver()
    clock = mock.Mock(return_value=100.0)
    with mock.patch.object(sink_loop.time, "monotonic", clock):
        idle = _IdleStop(stop, 2.0, driver)  # type: ignore[arg-type]
        clock.return_value = 150.0
        idle([])  # still joining for 50 s
        clock.return_value = 151.0
        idle([0, 1])
        assert not stop.is_set()
        driver.last_batch_at = 151.5
        clock.return_value = 153.0
        idle([0, 1])
        assert not stop.is_set()
        clock.return_value = 153.6
        idle([0, 1])
        assert stop.is_set()
