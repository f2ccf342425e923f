"""Deliverer + BatchDelivery against an in-process aiohttp receiver on 127.0.0.1 (no Kafka, no Redis).

Time is fake: backoff waits and the batch deadline run on :class:`FakeTime`, so no test sleeps
through a retry delay (only the HTTP timeout test waits, for a real socket timeout of 50 ms).
"""

import asyncio
import contextlib
import json
from collections import defaultdict

import aiohttp
import pytest
from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError

from connectors.webhook.batch import BatchDelivery
from connectors.webhook.config import parse_config
from connectors.webhook.delivery import Deliverer
from connectors.webhook.done import DoneStore
from connectors.webhook.exceptions import DoneStoreError
from connectors.webhook.signing import verify_signature
from schemas.codec import default_registry
from streams.deadletters import encode_dead_letters
from streams.records import Record

SECRET = "unit-test-secret-0123456789"
REGISTRY = default_registry()
ENCODE = REGISTRY.encoder("trigger")
DECODE_DL = REGISTRY.decoder("deadletter")


def trigger(n: int, rule: str = "high_intent", values: str = '{"score": 7}') -> dict:
    return {"rule": rule, "oneid": f"oid-{n}", "idempotency_key": f"{rule}:{n:016x}",
            "event_time": 1_700_000_000_000 + n, "fired_at": 1_700_000_001_000 + n,
            "message_id": f"m-{n}", "marketing": n % 2 == 0, "values": values}


def message(n: int, value: bytes) -> Record:
    return Record(n % 3, 100 + n, f"oid-{n}".encode(), value, "t.triggers")


def letters(result) -> list[tuple[bytes | None, dict]]:
    """The batch's dead letters as they go on the wire: (key, decoded DeadLetter)."""
    return [(key, DECODE_DL(value)) for key, value in encode_dead_letters(result.deadletters)]


class FakeTime:
    """The deliverer's clock and waiter: a wait returns at once and moves the clock on.

    ``on_wait`` runs when a wait starts (a stop request arriving mid-backoff); ``gate``, when
    set, holds every wait until it opens (proves others progress while one endpoint backs off).
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []
        self.on_wait = None
        self.gate: asyncio.Event | None = None

    def clock(self) -> float:
        return self.now

    async def wait(self, stop: asyncio.Event, seconds: float) -> bool:
        self.waits.append(seconds)
        if self.on_wait is not None:
            self.on_wait()
        if self.gate is not None:
            await self.gate.wait()
        if stop.is_set():
            return True
        self.now += seconds
        return False


class MemoryDone:
    """The done store's interface, in memory."""

    def __init__(self, done=()):
        self.done = set(done)
        self.marked = []

    def key(self, endpoint, idempotency_key):
        return f"p:webhook:done:{endpoint}:{idempotency_key}"

    async def already_done(self, keys):
        return [k in self.done for k in keys]

    def mark(self, key):
        self.done.add(key)
        self.marked.append(key)

    async def flush(self):
        return None


class Receiver:
    """Answers each path with a script of statuses (the last one repeats); records every request."""

    def __init__(self, scripts: dict[str, list], fake: FakeTime):
        self.scripts = scripts
        self.fake = fake
        self.requests = defaultdict(list)  # path -> [(headers, body, fake time)]
        self.arrived: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.expect: dict[str, int] = {}

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        seen = self.requests[request.path]
        seen.append((dict(request.headers), body, self.fake.now))
        if len(seen) >= self.expect.get(request.path, 1 << 30):
            self.arrived[request.path].set()
        script = self.scripts[request.path]
        step = script[min(len(seen), len(script)) - 1]
        if step == "slow":  # an answer that takes 0.6 s of the batch's (fake) time
            self.fake.now += 0.6
            step = 200
        elif step == "hang":  # longer than the client's 50 ms timeout: a real socket timeout
            await asyncio.sleep(0.15)
            step = 200
        status, headers = (step, {}) if isinstance(step, int) else step
        return web.Response(status=status, headers=headers)


@contextlib.asynccontextmanager
async def receiving(receiver: Receiver, endpoints: list, deadline_s: float, *, stop=None, done=None):
    """The receiver on a free port, the endpoints pointed at it: (BatchDelivery, done store)."""
    app = web.Application()
    app.router.add_route("POST", "/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    for e in endpoints:
        e.setdefault("secret", SECRET)
        e["url"] = e["url"].replace("PORT", str(port))
    config = parse_config({"endpoints": endpoints, "batch_deadline_s": deadline_s})
    done = done or MemoryDone()
    fake = receiver.fake
    try:
        async with aiohttp.ClientSession() as session:
            deliverer = Deliverer(session, done, stop=stop, clock=fake.clock, waiter=fake.wait)
            yield BatchDelivery(config, deliverer, done, REGISTRY), done
    finally:
        await runner.cleanup()


async def run_batch(scripts, endpoints, messages, *, done=None, deadline_s=30.0, stop=None, fake=None,
                    receiver=None):
    receiver = receiver or Receiver(scripts, fake or FakeTime())
    async with receiving(receiver, endpoints, deadline_s, stop=stop, done=done) as (batch, done):
        result = await batch.process(messages)
    return result, receiver, done


FAST = {"base_s": 0.01, "max_s": 0.05}


def test_retries_503_then_delivers_once_signed_with_the_idempotency_key():
    t = trigger(1)
    msgs = [message(1, ENCODE(t))]
    result, receiver, done = asyncio.run(run_batch(
        {"/a": [503, 503, 200]},
        [{"name": "a", "url": "http://127.0.0.1:PORT/a", "rules": ["*"], "backoff": FAST}], msgs))
    assert (result.delivered, result.deadletters, result.complete) == (1, [], True)
    requests = receiver.requests["/a"]
    assert [h["X-Touchstream-Attempt"] for h, _, _ in requests] == ["1", "2", "3"]
    for headers, body, _ in requests:
        assert verify_signature(SECRET, headers["X-Touchstream-Signature"], body)
        assert headers["X-Touchstream-Idempotency-Key"] == t["idempotency_key"]
        assert headers["Content-Type"] == "application/json"
    payload = json.loads(requests[-1][1])
    assert payload == {**{k: t[k] for k in t if k != "values"}, "values": {"score": 7}}
    assert done.marked == [f"p:webhook:done:a:{t['idempotency_key']}"]


def test_fan_out_follows_rules_and_skips_done_and_in_batch_duplicates():
    t1, t2, t3 = trigger(1), trigger(2, rule="tier_upgrade"), trigger(3, rule="unrouted")
    msgs = [message(1, ENCODE(t1)), message(2, ENCODE(t2)), message(3, ENCODE(t3)),
            message(4, ENCODE(t1))]  # t1 again in the same batch
    already = MemoryDone({f"p:webhook:done:b:{t2['idempotency_key']}"})
    result, receiver, _ = asyncio.run(run_batch(
        {"/a": [200], "/b": [200]},
        [{"name": "a", "url": "http://127.0.0.1:PORT/a", "rules": ["high_intent"]},
         {"name": "b", "url": "http://127.0.0.1:PORT/b", "rules": ["high_intent", "tier_upgrade"]}],
        msgs, done=already))
    keys_a = [h["X-Touchstream-Idempotency-Key"] for h, _, _ in receiver.requests["/a"]]
    keys_b = [h["X-Touchstream-Idempotency-Key"] for h, _, _ in receiver.requests["/b"]]
    assert keys_a == [t1["idempotency_key"]]
    assert keys_b == [t1["idempotency_key"]]  # t2 was already done for b
    assert (result.delivered, result.already_done, result.deadletters) == (2, 3, [])


def test_4xx_is_final_and_dead_lettered_with_the_original_bytes():
    raw = ENCODE(trigger(5))
    result, receiver, done = asyncio.run(run_batch(
        {"/gone": [404]}, [{"name": "gone", "url": "http://127.0.0.1:PORT/gone", "rules": ["*"]}],
        [message(5, raw)]))
    assert len(receiver.requests["/gone"]) == 1
    assert done.marked == []
    [(key, letter)] = letters(result)
    assert key == b"oid-5"
    assert (letter["stage"], letter["reason"], letter["attempts"]) == ("webhook", "rejected_4xx", 1)
    assert letter["original"] == raw
    assert (letter["source_topic"], letter["partition"], letter["offset"]) == ("t.triggers", 2, 105)
    assert "gone" in letter["error"] and "HTTP 404" in letter["error"]


@pytest.mark.parametrize("status", [408, 429, 500, 502])
def test_retryable_statuses_stop_at_max_attempts(status):
    result, receiver, _ = asyncio.run(run_batch(
        {"/x": [status]},
        [{"name": "x", "url": "http://127.0.0.1:PORT/x", "rules": ["*"], "max_attempts": 3, "backoff": FAST}],
        [message(1, ENCODE(trigger(1)))]))
    assert len(receiver.requests["/x"]) == 3
    [(_, letter)] = letters(result)
    assert (letter["reason"], letter["attempts"]) == ("delivery_failed", 3)


def test_retry_after_is_honoured():
    result, receiver, _ = asyncio.run(run_batch(
        {"/x": [(429, {"Retry-After": "1"}), 200]},
        [{"name": "x", "url": "http://127.0.0.1:PORT/x", "rules": ["*"], "backoff": FAST}],
        [message(1, ENCODE(trigger(1)))]))
    first, second = receiver.requests["/x"]
    assert second[2] - first[2] >= 0.95
    assert result.delivered == 1


def test_timeouts_and_network_errors_are_retried():
    result, receiver, _ = asyncio.run(run_batch(
        {"/slow": ["hang", 200]},
        [{"name": "slow", "url": "http://127.0.0.1:PORT/slow", "rules": ["*"], "timeout_s": 0.05,
          "backoff": FAST},
         {"name": "closed", "url": "http://127.0.0.1:1/nothing-listens", "rules": ["*"], "max_attempts": 2,
          "backoff": FAST}],
        [message(1, ENCODE(trigger(1)))]))
    assert len(receiver.requests["/slow"]) == 2
    assert result.delivered == 1
    [(_, letter)] = letters(result)
    assert letter["reason"] == "delivery_failed" and letter["attempts"] == 2
    assert "closed" in letter["error"] and "network error" in letter["error"]


def test_batch_deadline_cuts_retries_short():
    fake = FakeTime()
    result, receiver, _ = asyncio.run(run_batch(
        {"/x": [503]},
        [{"name": "x", "url": "http://127.0.0.1:PORT/x", "rules": ["*"],
          "backoff": {"base_s": 5, "max_s": 5}}],
        [message(1, ENCODE(trigger(1)))], deadline_s=1.0, fake=fake))
    assert fake.waits == []  # a retry that would pass the deadline is not waited for
    assert len(receiver.requests["/x"]) == 1
    [(_, letter)] = letters(result)
    assert letter["reason"] == "delivery_failed" and "deadline" in letter["error"]


def test_no_attempt_starts_after_the_deadline_so_a_slow_endpoint_cannot_stall_the_batch():
    fake = FakeTime()
    result, receiver, _ = asyncio.run(run_batch(
        {"/slow": ["slow"]},  # 0.6 s per answer, one connection: only 2 of 6 can start within 1 s
        [{"name": "slow", "url": "http://127.0.0.1:PORT/slow", "rules": ["*"], "max_in_flight": 1}],
        [message(n, ENCODE(trigger(n))) for n in range(6)], deadline_s=1.0, fake=fake))
    assert fake.now == pytest.approx(1.2)  # deadline + at most one answer
    assert len(receiver.requests["/slow"]) == result.delivered == 2
    dead = [x for _, x in letters(result)]
    assert len(dead) == 4
    assert all(x["attempts"] == 0 and "waiting for a free connection" in x["error"] for x in dead)


def test_a_failing_endpoint_does_not_delay_a_healthy_one():
    """Every backoff of the failing endpoint is held until all 20 healthy deliveries arrived: the
    batch can only finish (not time out) if the healthy ones never waited for the failing ones."""

    async def scenario():
        fake = FakeTime()
        fake.gate = asyncio.Event()
        receiver = Receiver({"/ok": [200], "/bad": [503]}, fake)
        receiver.expect["/ok"] = 20
        receiver.arrived["/ok"] = fake.gate
        return await asyncio.wait_for(run_batch(
            receiver.scripts,
            [{"name": "ok", "url": "http://127.0.0.1:PORT/ok", "rules": ["*"]},
             {"name": "bad", "url": "http://127.0.0.1:PORT/bad", "rules": ["*"], "max_attempts": 4,
              "backoff": {"base_s": 0.2, "max_s": 0.2}, "breaker": {"failures": 0}}],
            [message(n, ENCODE(trigger(n))) for n in range(20)], fake=fake, receiver=receiver), 10)

    result, receiver, _ = asyncio.run(scenario())
    assert len(receiver.requests["/ok"]) == 20 and len(receiver.requests["/bad"]) == 80
    assert result.delivered == 20 and len(result.deadletters) == 20


def test_undecodable_bytes_and_bad_values_are_dead_lettered():
    bad_values = ENCODE(trigger(2, values="{not json"))
    result, receiver, _ = asyncio.run(run_batch(
        {"/a": [200]}, [{"name": "a", "url": "http://127.0.0.1:PORT/a", "rules": ["*"]}],
        [message(1, b"not avro at all"), message(2, bad_values), message(3, ENCODE(trigger(3)))]))
    reasons = sorted(x["reason"] for _, x in letters(result))
    assert reasons == ["avro_decode", "invalid_values"]
    assert {x["original"] for _, x in letters(result)} == {b"not avro at all", bad_values}
    assert len(receiver.requests["/a"]) == 1 and result.delivered == 1


def test_stop_abandons_waiting_retries_and_leaves_the_batch_uncommitted():
    async def scenario():
        stop, fake = asyncio.Event(), FakeTime()
        fake.on_wait = stop.set  # SIGTERM arrives while the retry waits
        return await run_batch(
            {"/x": [503]},
            [{"name": "x", "url": "http://127.0.0.1:PORT/x", "rules": ["*"],
              "backoff": {"base_s": 10, "max_s": 10}}],
            [message(1, ENCODE(trigger(1)))], stop=stop, fake=fake)

    result, receiver, _ = asyncio.run(scenario())
    assert len(receiver.requests["/x"]) == 1
    assert result.abandoned == 1 and not result.complete and result.deadletters == []


class FlakyRedis:
    """Just enough of redis.asyncio for DoneStore: pipeline writes fail while ``down``."""

    def __init__(self):
        self.down = True
        self.data = {}

    async def mget(self, keys):
        return [self.data.get(k) for k in keys]

    def pipeline(self, transaction=False):
        store = self

        class Pipe:
            def __init__(self):
                self.ops = []

            async def __aenter__(self):
                return self

            async def __aexit__(self, *exc):
                return False

            def set(self, key, value, ex=None):
                self.ops.append((key, value, ex))

            async def execute(self):
                if store.down:
                    raise RedisConnectionError("down")
                for key, value, ex in self.ops:
                    store.data[key] = (value, ex)

        return Pipe()


def test_done_store_group_commits_and_never_drops_marks_redis_refused():
    async def scenario():
        client = FlakyRedis()
        store = DoneStore(client, "p:", ttl_s=60, write_tries=2, retry_s=0)
        store.mark(store.key("a", "k1"))
        store.mark(store.key("a", "k2"))
        with pytest.raises(DoneStoreError):
            await store.flush()
        assert store.pending == 2 and client.data == {}
        client.down = False
        await store.flush()
        assert store.pending == 0
        ttls = {k: v[1] for k, v in client.data.items()}
        assert ttls == {"p:webhook:done:a:k1": 60, "p:webhook:done:a:k2": 60}
        assert await store.already_done(["p:webhook:done:a:k1", "p:webhook:done:b:k1"]) == [True, False]

    asyncio.run(scenario())


def test_a_trigger_that_breaks_the_payload_builder_is_dead_lettered_and_the_others_delivered(monkeypatch):
    import connectors.webhook.batch as batch_module

    real_build = batch_module.build_body

    def build(trigger_: dict) -> bytes:
        if trigger_["oneid"] == "oid-2":
            raise RuntimeError("unexpected shape")
        return real_build(trigger_)

    monkeypatch.setattr(batch_module, "build_body", build)
    result, receiver, _ = asyncio.run(run_batch(
        {"/a": [200]}, [{"name": "a", "url": "http://127.0.0.1:PORT/a", "rules": ["*"]}],
        [message(n, ENCODE(trigger(n))) for n in (1, 2, 3)]))
    dead = [x for _, x in letters(result)]
    assert [(d["reason"], d["offset"]) for d in dead] == [("processing_error", 102)]
    assert dead[0]["error"] == "RuntimeError: unexpected shape"
    assert len(receiver.requests["/a"]) == 2 and result.delivered == 2
