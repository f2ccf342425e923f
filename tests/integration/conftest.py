"""Integration fixtures: start the project's own stack and give each test run unique names."""

from __future__ import annotations

import base64
import gzip
import json
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from confluent_kafka import Consumer, TopicPartition

from schemas.codec import default_registry
from schemas.exceptions import DecodeError
from streams.topics import Topics, create_topics
from tests.conftest import load_stack_module
from touchstream.settings import Settings


@pytest.fixture(scope="session")
def stack() -> object:
    """The local Kafka + Redis stack, started when it is not running; fails (never skips)."""
    module = load_stack_module()
    stack = module.Stack()
    try:
        stack.up(timeout=180)
    except module.StackError as exc:
        pytest.fail(f"the local stack could not start: {exc}", pytrace=False)
    return stack


def free_port() -> int:
    """A TCP port nobody listens on now: runs (and engineers) in parallel never collide."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def settings(stack: object, run_id: str) -> Settings:
    """Settings with topic, group and Redis-key names unique to this test run."""
    settings = Settings.from_env(
        {},
        topic_prefix=f"test-{run_id}",
        app_id=f"test-{run_id}",
        redis_prefix=f"test:{run_id}:",
        partitions=3,
        worker_web_port=free_port(),
        http_port=free_port(),
        http_ops_port=0,  # one port, as a single-port deployment; test_ops_port.py runs the split
        pseudonym_secret_file=str(stack.local / "pseudonym.secret"),  # whatever a process's folder
    )
    create_topics(settings)
    return settings


@pytest.fixture(scope="session")
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    """A client for this run; every key under the run's prefix is removed when the run ends."""
    client = redis.Redis.from_url(settings.redis_url)
    yield client
    for key in client.scan_iter(match=f"{settings.redis_prefix}*", count=1000):
        client.delete(key)
    client.close()


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that makes a subprocess read exactly these settings."""
    return settings.child_env()


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise TimeoutError(f"the process serving {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@pytest.fixture(scope="session")
def collector(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `touchstream serve` process for this run; yields its base URL."""
    log = tmp_path_factory.mktemp("collector") / "serve.log"
    env = settings_env(settings)
    env["TOUCHSTREAM_KEY_CACHE_S"] = "0"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "apps.cli", "serve"], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://{settings.http_host}:{settings.http_port}"
    try:
        wait_http(base + "/healthz", proc=proc)
    except TimeoutError:
        proc.kill()
        pytest.fail("collector did not start:\n" + log.read_text(), pytrace=False)
    yield base
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def cli(settings: Settings, *args: str) -> str:
    """Run the `touchstream` CLI with these settings; stdout."""
    result = subprocess.run([sys.executable, "-m", "apps.cli", *args], env=settings_env(settings),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def write_key(settings: Settings) -> str:
    # one key for every test of the run: its rate must not be what a test measures
    return cli(settings, "keys", "create", "--scope", "write", "--name", "web", "--rate", "1000000",
               "--burst", "1000000").strip()


@pytest.fixture(scope="session")
def read_key(settings: Settings) -> str:
    return cli(settings, "keys", "create", "--scope", "read", "--name", "analyst").strip()


class CliProcess:
    """A real `touchstream <command>` subprocess with these settings; SIGKILL-able for fault tests."""

    command: tuple[str, ...] = ()

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self, *args: str):  # type: ignore[no-untyped-def]  # returns self, the subclass
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "apps.cli", *self.command, *args],
                                         env=self.settings.child_env(), stdout=out, stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM and wait (SIGKILL after ``timeout``); the exit code, None if never started."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


class WorkerProcess(CliProcess):
    """A real `touchstream worker`, its ops port on ``web_port``."""

    command = ("worker",)

    def __init__(self, settings: Settings, log_path: Path, web_port: int) -> None:
        super().__init__(replace(settings, worker_web_port=web_port), log_path)


@pytest.fixture(scope="session")
def worker(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """One worker for this run's topics (started once, stopped at the end)."""
    process = WorkerProcess(settings, tmp_path_factory.mktemp("worker") / "worker.log", free_port()).start()
    yield process
    process.stop()


class TopicReader:
    """Reads a topic from its beginning, decoding Avro, remembering what it has seen."""

    def __init__(self, settings: Settings, topic: str, schema: str) -> None:
        from confluent_kafka import Consumer

        from schemas.codec import default_registry

        self.consumer = Consumer({"bootstrap.servers": settings.broker, "group.id": f"r-{uuid.uuid4().hex}",
                                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self.consumer.subscribe([topic])
        self.decode = default_registry().decoder(schema)
        self.records: list[dict] = []

    def until(self, predicate, timeout: float = 30.0) -> list[dict]:  # type: ignore[no-untyped-def]
        """Read until predicate(records) is true or the timeout passes; the records read so far."""
        deadline = time.monotonic() + timeout
        while not predicate(self.records) and time.monotonic() < deadline:
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            try:
                record = self.decode(msg.value())
            except DecodeError:  # another test's deliberate garbage on the shared topic
                continue
            record["_partition"], record["_offset"], record["_key"] = msg.partition(), msg.offset(), msg.key()
            self.records.append(record)
        return self.records

    def close(self) -> None:
        self.consumer.close()


def wait_caught_up(settings: Settings, topic: str, timeout: float = 120.0) -> None:
    """Wait until the workers' consumer group has committed every record of the topic."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({"bootstrap.servers": settings.broker, "group.id": settings.app_id,
                         "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p) for p in meta.partitions]
        deadline = time.monotonic() + timeout
        highs: list[int] = []
        committed: list[int] = []
        while True:
            try:
                highs = [consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in parts]
                committed = [tp.offset for tp in consumer.committed(parts, timeout=10)]
                # no commit yet (-1001) on an empty partition is caught up: the group starts at 0
                if all(max(c, 0) >= h for c, h in zip(committed, highs, strict=True)):
                    return
            except KafkaException:  # a broker just restarted: leaders are being elected
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: committed {committed} of {highs}")
            time.sleep(0.5)
    finally:
        consumer.close()


def wait_merges_acknowledged(settings: Settings, timeout: float = 90.0) -> None:
    """Wait until the identity graph's merge outbox is empty: every merge record is on Kafka
    (one left behind by a crash is re-sent after a 30 s grace)."""
    from apps import factory

    graph = factory.identity_graph(settings, redis.Redis.from_url(settings.redis_url))
    deadline = time.monotonic() + timeout
    while graph.unacknowledged_merges(0, float("inf")):
        if time.monotonic() > deadline:
            raise TimeoutError("merge records still unacknowledged")
        time.sleep(0.5)


def wait_triggers_acknowledged(settings: Settings, timeout: float = 90.0) -> None:
    """Wait until the trigger outbox is empty: every confirmed trigger is on Kafka (one a SIGKILL
    left between the profile script and Kafka's ack is re-sent by the sweep after a 30 s grace)."""
    client = redis.Redis.from_url(settings.redis_url)
    deadline = time.monotonic() + timeout
    while client.hlen(f"{settings.redis_prefix}outbox"):
        if time.monotonic() > deadline:
            raise TimeoutError("triggers still waiting in the outbox")
        time.sleep(0.5)


def recount(settings: Settings, records: list[dict]) -> tuple[Counter[str], Counter[str]]:
    """Page views and orders per final person, recounted from the resolved topic's records.

    A crash can make the resolve stage put an event on the topic twice; the profile stage
    applied the copy whose position claimed the messageId first, so that is the one counted.
    """
    from apps import factory
    from streams.claims import Claims

    client = redis.Redis.from_url(settings.redis_url)
    claims = Claims(client, settings.redis_prefix, "profile", settings.stream_dedup_window_s)
    by_position = {(r["_partition"], r["_offset"]): r for r in records}
    applied = {}
    for r in records:
        claim = claims.position(r["source"], r["message_id"])
        assert claim is not None, f"{r['message_id']} never reached the profile stage"
        partition, offset = map(int, claim.split(":"))
        applied[r["message_id"]] = by_position[(partition, offset)]
    graph = factory.identity_graph(settings, client)
    final = graph.resolve_aliases({r["oneid"] for r in applied.values()})
    pages = Counter(final[r["oneid"]] for r in applied.values() if r["type"] == "page")
    orders = Counter(final[r["oneid"]] for r in applied.values()
                     if r["type"] == "track" and r["event"] == "Order Completed")
    return pages, orders


def assert_aggregates_equal_recount(settings: Settings, records: list[dict]) -> tuple[int, int]:
    """Every profile's page_views_30d and orders_90d equal the recount; (profiles, with orders)."""
    from apps import factory

    pages, orders = recount(settings, records)
    store = factory.profile_store(settings, redis.Redis.from_url(settings.redis_url))
    assert orders, "the traffic has orders"
    for oneid, count in pages.items():
        assert store.get_profile(oneid)["aggregates"]["page_views_30d"] == count, oneid
    for oneid, count in orders.items():
        assert store.get_profile(oneid)["aggregates"]["orders_90d"] == count, oneid
    return len(pages), len(orders)


# ---- helpers shared by the integration tests ----


def post(url: str, body: object, *, key: str | None, gzipped: bool = False, raw: bytes | None = None):
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if gzipped:
        data = gzip.compress(data)
        headers["Content-Encoding"] = "gzip"
    if key is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def metric(base: str, name: str, **labels: str) -> float:
    text = urllib.request.urlopen(base + "/metrics", timeout=10).read().decode()
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
            total += float(match.group(2))
    return total


def raw_records(settings, marker: str, timeout: float = 30.0, expect: int | None = None) -> list[dict]:
    """Every Event on this run's raw topic whose message_id starts with marker."""
    topic = Topics.of(settings).raw
    consumer = Consumer({"bootstrap.servers": settings.broker, "group.id": f"read-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    meta = consumer.list_topics(topic, timeout=10)
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.topics[topic].partitions])
    registry = default_registry()
    highs = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
             for p in meta.topics[topic].partitions}
    done = {p for p, h in highs.items() if h == 0}
    found = []
    deadline = time.monotonic() + timeout
    while len(done) < len(highs) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            continue
        if msg.offset() + 1 >= highs[msg.partition()]:
            done.add(msg.partition())
        try:
            _, record = registry.decode(msg.value())
        except DecodeError:  # the shared raw topic also holds other tests' deliberate garbage
            continue
        if record["message_id"].startswith(marker):
            record["_key"] = msg.key()
            found.append(record)
    consumer.close()
    return found


def api(base: str, method: str, path: str, key: str, body: object | None = None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method,
                                     headers={"Authorization": f"Bearer {key}",
                                              "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def wait_resolved(reader: TopicReader, message_ids: set[str], timeout: float = 60.0) -> dict[str, dict]:
    def done(records: list[dict]) -> bool:
        return message_ids <= {r["message_id"] for r in records}

    found = {r["message_id"]: r for r in reader.until(done, timeout) if r["message_id"] in message_ids}
    assert set(found) == message_ids, f"missing {sorted(message_ids - set(found))[:5]}"
    return found


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def produce_raw(settings: Settings, events: list[dict]) -> None:
    """Event records straight onto the raw topic, keyed as the collector keys them."""
    from confluent_kafka import Producer

    from connectors.ingest import partition_key

    producer = Producer({"bootstrap.servers": settings.broker, "linger.ms": 5})
    registry = default_registry()
    for event in events:
        producer.produce(Topics.of(settings).raw, registry.encode("event", event), partition_key(event))
    assert producer.flush(30) == 0


def kill_three_times(worker: WorkerProcess, resolved: TopicReader, total: int,
                     key: str = "message_id") -> None:
    """Start the worker and SIGKILL it part-way three times (once a quarter, a half, three quarters
    of ``total`` records, distinct by ``key``, are on the reader's topic), then start it for good."""
    for kill in range(3):
        worker.start()
        target = total * (kill + 1) // 4
        resolved.until(lambda rs, t=target: len({r[key] for r in rs}) >= t, 90)
        worker.kill()
    worker.start()

