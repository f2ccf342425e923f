"""The consumer settings every checkpointed loop shares (stage loops and sinks)."""

from __future__ import annotations

from streams.clients import client_config

#: A loop that has not polled for this long is hung (one that waits out an outage still polls).
MAX_POLL_INTERVAL_MS = 120_000


def consumer_config(broker: str, group: str, client_id: str, *,
                    max_poll_interval_ms: int = MAX_POLL_INTERVAL_MS) -> dict[str, object]:
    """Manual commits, from the earliest offset, and a dead member's partitions move in ~10 s.

    A sink whose batch can outlast two minutes (HTTP retries) raises ``max_poll_interval_ms``.
    """
    settings: dict[str, object] = {
        "group.id": group,
        "client.id": client_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 3_000,
        "partition.assignment.strategy": "cooperative-sticky",
        "fetch.wait.max.ms": 50,
        "queued.max.messages.kbytes": 32_768,
        "max.poll.interval.ms": max_poll_interval_ms,
    }
    return client_config(broker, **settings)
