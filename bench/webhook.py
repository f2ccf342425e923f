"""Webhook sink benchmark: deliveries per second from the triggers topic to a local receiver.

``python -m bench.webhook [triggers] [endpoints]`` produces Avro triggers to topics of
its own (``bench-<run>.*``), runs :func:`run_webhook_sink` until idle against an aiohttp
receiver on 127.0.0.1 (separate processes, so the receiver does not share the sink's CPU) and
prints the figures as JSON. It deletes its topics and Redis keys afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import multiprocessing
import os
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import redis
import yaml
from aiohttp import web
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

from connectors.webhook.sink import run_webhook_sink
from schemas.codec import default_registry
from streams.topics import Topics, create_topics, new_topics
from touchstream.settings import Settings

log = logging.getLogger(__name__)

RULES = ("high_intent", "tier_upgrade", "cart_abandoned")


def _serve(port: int, counter: Any, ready: Any) -> None:
    """One receiver process: 200 to every POST, counted in shared memory."""

    async def handle(request: web.Request) -> web.Response:
        await request.read()
        with counter.get_lock():
            counter.value += 1
        return web.Response(status=200)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/{name}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, reuse_port=True).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def produce(settings: Settings, count: int) -> None:
    encode = default_registry().encoder("trigger")
    producer = Producer({"bootstrap.servers": settings.broker, "enable.idempotence": True, "acks": "all",
                         "linger.ms": 5})
    topic = Topics.of(settings).triggers
    for n in range(count):
        rule = RULES[n % len(RULES)]
        record = {"rule": rule, "oneid": f"bench-{n}", "idempotency_key": f"{rule}:{n:016x}",
                  "event_time": 1_700_000_000_000 + n, "fired_at": 1_700_000_000_500 + n,
                  "message_id": f"m-{n}", "marketing": False, "values": '{"score": 42, "tier": "gold"}'}
        while True:
            try:
                producer.produce(topic, encode(record), record["oneid"].encode())
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(60):
        raise RuntimeError("bench: the broker did not acknowledge every trigger")


def bench_webhooks(settings: Settings, triggers: int = 20_000, endpoints: int = 2,
                   receivers: int = 2) -> dict[str, Any]:
    """Deliver ``triggers`` to ``endpoints`` endpoints (all rules) and return the figures."""
    run = uuid.uuid4().hex[:8]
    settings = dataclasses.replace(settings, topic_prefix=f"bench-{run}", app_id=f"bench-{run}",
                                   redis_prefix=f"{settings.redis_prefix}bench:{run}:")
    port = _free_port()
    ctx = multiprocessing.get_context("spawn")
    counter = ctx.Value("q", 0)
    procs = []
    for _ in range(receivers):
        ready = ctx.Event()
        proc = ctx.Process(target=_serve, args=(port, counter, ready), daemon=True)
        proc.start()
        if not ready.wait(30):
            raise RuntimeError("bench: the receiver did not start")
        procs.append(proc)
    config = {"endpoints": [
        {"name": f"e{i}", "url": f"http://127.0.0.1:{port}/e{i}", "secret": f"bench-secret-{i:08d}",
         "rules": ["*"], "max_in_flight": 64} for i in range(endpoints)]}
    client = redis.Redis.from_url(settings.redis_url)
    admin = AdminClient({"bootstrap.servers": settings.broker})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "webhooks.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        os.chmod(path, 0o600)
        try:
            create_topics(settings)
            produce(settings, triggers)
            cpu = time.process_time()
            stats = run_webhook_sink(settings, path, stop_after_idle_s=2.0)
            cpu = time.process_time() - cpu
        finally:
            for proc in procs:
                proc.terminate()
            for name, future in admin.delete_topics([t.topic for t in new_topics(settings)]).items():
                try:
                    future.result(30)
                except KafkaException as exc:  # cleanup only: report and go on
                    log.warning("bench: topic %s not deleted: %s", name, exc)
            for key in client.scan_iter(match=f"{settings.redis_prefix}*", count=1000):
                client.delete(key)
    return {
        "triggers": triggers, "endpoints": endpoints, "batch_size": settings.batch_size,
        "delivered": stats.delivered, "received": counter.value, "batches": stats.batches,
        "active_seconds": round(stats.active_seconds, 3),
        "deliveries_per_s": round(stats.delivered / stats.active_seconds) if stats.active_seconds else 0,
        "triggers_per_s": round(stats.triggers / stats.active_seconds) if stats.active_seconds else 0,
        "sink_cpu_us_per_delivery": round(cpu / max(stats.delivered, 1) * 1e6),  # idle polling included
    }


def main(argv: list[str]) -> None:
    logging.basicConfig(level="WARNING")
    triggers = int(argv[0]) if argv else 20_000
    endpoints = int(argv[1]) if len(argv) > 1 else 2
    print(json.dumps(bench_webhooks(Settings.from_env(), triggers, endpoints), indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
