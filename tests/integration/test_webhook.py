"""The webhook sink on the real Kafka and Redis, delivering to a local aiohttp receiver."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict

import pytest
import yaml
from aiohttp import web
from confluent_kafka import Producer
from prometheus_client import REGISTRY

from connectors.deadletter import read_dead_letters
from connectors.webhook import run_webhook_sink, verify_signature
from connectors.webhook.exceptions import WebhookError
from schemas.codec import default_registry
from streams.topics import Topics, create_topics
from tests.conftest import ROOT

SECRETS = {"flaky": "flaky-secret-0123456789", "crm": "crm-secret-0123456789ab",
           "broken": "broken-secret-0123456789"}
# Rule names of this test only: other tests' triggers share the run's topic and must not reach "broken".
RULES = ("wh_high_intent", "wh_tier_upgrade", "wh_cart_abandoned")


class Receiver:
    """aiohttp on 127.0.0.1 (free port) in its own thread. /flaky answers 503 to the first two
    attempts of each idempotency key, then 200; /crm always 200; /broken always 503."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.attempts: Counter[tuple[str, str]] = Counter()  # (endpoint, key) -> attempts
        self.delivered: dict[str, list[dict]] = defaultdict(list)  # endpoint -> 2xx-answered requests
        self.bad_signatures = 0
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        body = await request.read()
        key = request.headers["X-Touchstream-Idempotency-Key"]
        if not verify_signature(SECRETS[name], request.headers["X-Touchstream-Signature"], body):
            self.bad_signatures += 1
            return web.Response(status=400)
        self.attempts[name, key] += 1
        if name == "broken" or (name == "flaky" and self.attempts[name, key] <= 2):
            return web.Response(status=503)
        self.delivered[name].append({"key": key, "body": body})
        return web.Response(status=204)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/{name}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.port = self.runner.addresses[0][1]

    def __enter__(self) -> Receiver:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture()
def receiver():
    with Receiver() as r:
        yield r


def write_config(path, port: int) -> str:
    fast = {"base_s": 0.05, "max_s": 0.2}
    config = {"batch_deadline_s": 30, "endpoints": [
        {"name": "flaky", "url": f"http://127.0.0.1:{port}/hooks/flaky", "secret": SECRETS["flaky"],
         "rules": ["*"], "timeout_s": 5, "backoff": fast},
        {"name": "crm", "url": f"http://127.0.0.1:{port}/hooks/crm", "secret": SECRETS["crm"],
         "rules": ["wh_high_intent"], "timeout_s": 5},
        {"name": "broken", "url": f"http://127.0.0.1:{port}/hooks/broken", "secret": SECRETS["broken"],
         "rules": ["wh_tier_upgrade"], "max_attempts": 3, "backoff": fast},
    ]}
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return str(path)


def produce_triggers(settings, marker: str, count: int) -> dict[str, tuple[dict, bytes, int, int]]:
    """Avro triggers on the run's triggers topic; idempotency key -> (record, bytes, partition, offset)."""
    encode = default_registry().encoder("trigger")
    producer = Producer({"bootstrap.servers": settings.broker, "enable.idempotence": True, "acks": "all"})
    sent: dict[str, tuple[dict, bytes, int, int]] = {}

    def report(err, msg):
        assert err is None, err
        record = records[msg.value()]
        sent[record["idempotency_key"]] = (record, msg.value(), msg.partition(), msg.offset())

    records = {}
    for n in range(count):
        rule = RULES[n % len(RULES)]
        record = {"rule": rule, "oneid": f"{marker}-{n}", "idempotency_key": f"{rule}:{marker}{n:08x}",
                  "event_time": 1_700_000_000_000 + n, "fired_at": 1_700_000_000_500 + n,
                  "message_id": f"{marker}-m{n}", "marketing": n % 2 == 0,
                  "values": f'{{"n": {n}, "name": "张三"}}'}
        value = encode(record)
        records[value] = record
        producer.produce(Topics.of(settings).triggers, value, record["oneid"].encode(), on_delivery=report)
    assert producer.flush(30) == 0
    return sent


def test_each_trigger_reaches_each_matching_endpoint_exactly_once(settings, redis_client, receiver, tmp_path):
    create_topics(settings)  # idempotent: the run's topics, triggers and deadletter included
    marker = uuid.uuid4().hex[:8]
    sent = produce_triggers(settings, marker, 30)
    config_path = write_config(tmp_path / "webhooks.yaml", receiver.port)

    before_503 = sample("touchstream_webhook_attempts_total", endpoint="flaky", result="5xx")
    stats = run_webhook_sink(settings, config_path, stop_after_idle_s=2.0)
    assert sample("touchstream_webhook_attempts_total", endpoint="flaky", result="5xx") - before_503 >= 60

    mine = {key for key in sent}
    wanted = {
        "flaky": mine,
        "crm": {k for k in mine if sent[k][0]["rule"] == "wh_high_intent"},
    }
    assert receiver.bad_signatures == 0
    for name, keys in wanted.items():
        got = Counter(d["key"] for d in receiver.delivered[name] if d["key"] in mine)
        assert set(got) == keys, name
        assert set(got.values()) == {1}, f"{name}: a trigger was delivered twice"
    assert {receiver.attempts["flaky", k] for k in mine} == {3}  # 503, 503, then 204
    assert not any(d["key"] in mine for d in receiver.delivered["broken"])

    body = next(d["body"] for d in receiver.delivered["crm"] if d["key"] in mine)
    payload = json.loads(body)
    record = sent[payload["idempotency_key"]][0]
    assert payload == {**{k: v for k, v in record.items() if k != "values"},
                       "values": json.loads(record["values"])}

    # 2xx pairs are remembered in Redis with a TTL; the failed ones are not
    some = next(iter(wanted["crm"]))
    done = f"{settings.redis_prefix}webhook:done:crm:{some}"
    assert 0 < redis_client.ttl(done) <= 30 * 24 * 3600
    tier = {k for k in mine if sent[k][0]["rule"] == "wh_tier_upgrade"}
    assert not redis_client.exists(f"{settings.redis_prefix}webhook:done:broken:{next(iter(tier))}")

    # the permanently failing endpoint: one dead letter per trigger, original bytes and position kept
    letters = [s.record for s in read_dead_letters(settings.broker, Topics.of(settings).deadletter)
               if s.record["stage"] == "webhook" and marker.encode() in s.record["original"]]
    assert sorted(r["original"] for r in letters) == sorted(sent[k][1] for k in tier)
    for letter in letters:
        record = default_registry().decoder("trigger")(letter["original"])
        _, _, partition, offset = sent[record["idempotency_key"]]
        # retries spent, or (once five deliveries had spent theirs) stopped by the open circuit
        assert (letter["reason"], letter["attempts"]) == ("delivery_failed", 3) or (
            letter["reason"] == "circuit_open" and letter["attempts"] < 3), letter
        assert (letter["source_topic"], letter["partition"], letter["offset"]) == (
            Topics.of(settings).triggers, partition, offset)
        assert letter["key"] == record["oneid"].encode()
        assert "broken" in letter["error"]
        assert "HTTP 503" in letter["error"] or "circuit open" in letter["error"]
    assert stats.delivered >= len(wanted["flaky"]) + len(wanted["crm"])

    # replay everything from the beginning in a new group: the done keys stop every re-delivery
    before = {name: len(receiver.delivered[name]) for name in ("flaky", "crm")}
    flaky_attempts = sum(receiver.attempts["flaky", k] for k in mine)
    broken_attempts = {k: receiver.attempts["broken", k] for k in tier}
    replay = dataclasses.replace(settings, app_id=f"{settings.app_id}-replay")
    skipped = ("touchstream_webhook_deliveries_total", {"endpoint": "crm", "outcome": "already_done"})
    done_before = sample(skipped[0], **skipped[1])
    again = run_webhook_sink(replay, config_path, stop_after_idle_s=2.0)
    assert sample(skipped[0], **skipped[1]) - done_before >= len(wanted["crm"])
    assert again.delivered == 0
    assert again.already_done >= len(wanted["flaky"]) + len(wanted["crm"])
    assert {name: len(receiver.delivered[name]) for name in ("flaky", "crm")} == before
    assert sum(receiver.attempts["flaky", k] for k in mine) == flaky_attempts  # not even attempted
    # never delivered, so tried again (a new sink starts with its circuit closed)
    assert all(receiver.attempts["broken", k] > broken_attempts[k] for k in tier)


class SlowReceiver(Receiver):
    """Always 200, after 20 ms: deliveries are in flight when the sink is killed."""

    async def handle(self, request: web.Request) -> web.Response:
        await asyncio.sleep(0.02)
        self.delivered["slow"].append({"key": request.headers["X-Touchstream-Idempotency-Key"]})
        return web.Response(status=200)


def test_a_killed_sink_re_delivers_at_most_what_was_in_flight(settings, redis_client, tmp_path):
    marker = uuid.uuid4().hex[:8]
    sent = produce_triggers(settings, marker, 400)
    in_flight = 8
    with SlowReceiver() as receiver:
        path = tmp_path / "slow.yaml"
        path.write_text(yaml.safe_dump({"endpoints": [
            {"name": "slow", "url": f"http://127.0.0.1:{receiver.port}/hooks/slow", "secret": SECRETS["crm"],
             "rules": ["*"], "max_in_flight": in_flight}]}))
        killed = dataclasses.replace(settings, app_id=f"{settings.app_id}-kill")
        code = ("import sys; from connectors.webhook import run_webhook_sink; from touchstream.settings "
                "import Settings; run_webhook_sink(Settings.from_env(), sys.argv[1])")
        proc = subprocess.Popen([sys.executable, "-c", code, str(path)], env=killed.child_env(), cwd=ROOT)
        try:
            deadline = time.monotonic() + 60
            while sum(marker in d["key"] for d in receiver.delivered["slow"]) < 100:
                assert proc.poll() is None and time.monotonic() < deadline, "the sink did not deliver"
                time.sleep(0.005)
        finally:
            proc.kill()  # SIGKILL, mid-batch: nothing of the batch is committed
            proc.wait(10)
        before = Counter(d["key"] for d in receiver.delivered["slow"] if marker in d["key"])
        assert 100 <= sum(before.values()) < len(sent)

        # a new group re-reads from the start (the killed member would hold the old group's partitions
        # until its session times out): only the done marks stand between the batch and re-delivery
        restarted = dataclasses.replace(settings, app_id=f"{settings.app_id}-restart")
        run_webhook_sink(restarted, path, stop_after_idle_s=2.0)

    got = Counter(d["key"] for d in receiver.delivered["slow"] if marker in d["key"])
    assert set(got) == set(sent)
    duplicates = sum(n - 1 for n in got.values())
    # only requests in flight (or answered in the last group commit) when killed are sent twice
    assert duplicates <= 2 * in_flight, duplicates


def test_a_missing_triggers_topic_fails_fast_and_says_what_to_do(settings, tmp_path):
    path = write_config(tmp_path / "webhooks.yaml", 1)
    missing = dataclasses.replace(settings, topic_prefix=f"{settings.topic_prefix}-none")
    started = time.monotonic()
    with pytest.raises(WebhookError, match="touchstream topics create"):
        run_webhook_sink(missing, path, stop_after_idle_s=1.0)
    assert time.monotonic() - started < 10
