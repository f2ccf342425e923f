"""``touchstream demo``: the main job end to end on the local stack, with a summary.

Starts a worker, sends sample events to the raw topic, waits until every one of them has come
out of the pipeline, stops the worker and reports counts and rates.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from connectors.samples import sample_events
from streams.topics import Topics, create_topics
from touchstream.settings import Settings


@dataclass
class DemoSummary:
    sent: int
    received: int
    seconds: float
    people: int

    @property
    def ok(self) -> bool:
        return self.received == self.sent

    def render(self) -> str:
        rate = self.received / self.seconds if self.seconds else 0.0
        return "\n".join([
            "Touchstream demo",
            f"  events sent to raw      : {self.sent}",
            f"  events out of pipeline  : {self.received}",
            f"  distinct people (keys)  : {self.people}",
            f"  wall time               : {self.seconds:.1f}s ({rate:,.0f} events/s incl. worker start)",
            f"  result                  : {'OK' if self.ok else 'INCOMPLETE'}",
        ])


def _end_offsets(consumer: Consumer, topic: str, timeout: float = 30.0) -> list[TopicPartition]:
    """The high watermark of every partition; retried while a new topic's leaders settle."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            meta = consumer.list_topics(topic, timeout=10)
            parts = []
            for p in meta.topics[topic].partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                parts.append(TopicPartition(topic, p, high))
            return parts
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def run_demo(settings: Settings, *, events: int, timeout: float,
             log_path: Path = Path(".local/demo-worker.log")) -> DemoSummary:
    topics = Topics.of(settings)
    create_topics(settings)
    run_id = uuid.uuid4().hex[:12]
    consumer = Consumer({"bootstrap.servers": settings.broker, "group.id": f"demo-{run_id}",
                         "enable.auto.commit": False})
    consumer.assign(_end_offsets(consumer, topics.resolved))

    log_path.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log_path, "ab") as log:
        worker = subprocess.Popen([sys.executable, "-m", "touchstream.cli", "worker"],
                                  env=settings.child_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        producer = Producer({"bootstrap.servers": settings.broker, "enable.idempotence": True})
        keys: set[str] = set()
        for event in sample_events(events, run_id=run_id):
            key = event.get("userId") or event["anonymousId"]
            keys.add(event["anonymousId"])
            producer.produce(topics.raw, key=key.encode(), value=json.dumps(event).encode())
            producer.poll(0)
        producer.flush(30)

        received = 0
        deadline = time.monotonic() + timeout
        while received < events and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            if json.loads(msg.value()).get("messageId", "").startswith(run_id):
                received += 1
        return DemoSummary(events, received, time.monotonic() - started, len(keys))
    finally:
        consumer.close()
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
