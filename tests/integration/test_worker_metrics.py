"""The worker's /metrics tell ops how far behind each stage is and whether its loop is alive."""

from __future__ import annotations

import re
import time
import urllib.request
import uuid

from confluent_kafka import Producer

from connectors.ingest import partition_key
from schemas.codec import default_registry
from streams.topics import Topics
from tests.integration.conftest import wait_caught_up
from touchstream.settings import Settings


def _metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def _samples(text: str, name: str) -> dict[str, float]:
    return {labels: float(value) for labels, value in re.findall(rf"^{name}{{(.*)}} (\S+)$", text, re.M)}


def test_lag_is_zero_once_caught_up_and_every_loop_polled_just_now(settings: Settings, worker) -> None:
    topics = Topics.of(settings)
    encode = default_registry().encoder("event")
    producer = Producer({"bootstrap.servers": settings.broker})
    now = int(time.time() * 1000)
    for i in range(60):
        user = f"lag-{uuid.uuid4().hex[:8]}"
        event = {"message_id": f"{user}-{i}", "type": "track", "event": "Lag Probe", "user_id": user,
                 "timestamp": now, "received_at": now, "source": "test",
                 "identifiers": [{"type": "user_id", "value": user}]}
        producer.produce(topics.raw, encode(event), partition_key(event))
    producer.flush(30)
    wait_caught_up(settings, topics.raw)
    wait_caught_up(settings, topics.resolved)

    web_port = worker.settings.worker_web_port
    deadline = time.monotonic() + 30
    while True:  # lag is reported after the batch's commit; give the last batch a moment
        text = _metrics(web_port)
        lag = _samples(text, "touchstream_consumer_lag_records")
        reported = {re.search(r'topic="([^"]+)"', k).group(1) for k in lag}  # type: ignore[union-attr]
        settled = {topics.raw, topics.resolved} <= reported and not any(lag.values())
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {topics.raw, topics.resolved} <= reported
    assert all(value == 0 for value in lag.values()), lag

    polled = _samples(text, "touchstream_stage_last_poll_timestamp_seconds")
    assert {re.search(r'stage="([^"]+)"', k).group(1) for k in polled} == {  # type: ignore[union-attr]
        "resolve", "profile", "merge-profiles"}
    assert all(time.time() - at < 10 for at in polled.values()), polled
