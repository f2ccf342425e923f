"""The collector's routes and middlewares in process (fake keys, limiter and ingestor; no Kafka, no Redis).

What is checked: validation off the event loop, the in-flight cap, the 429 path, and that every
error is a JSON body naming a field.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aiohttp import ClientSession, web

from apps import server
from connectors.collector import routes
from connectors.outcome import Outcome
from connectors.ratelimit import Decision
from connectors.validation import Limits
from tests.unit.connectors.conftest import serve
from touchstream import metrics
from touchstream.keys import ApiKey

GOOD = "good-key"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{GOOD}:".encode()).decode()}


class FakeKeys:
    async def check(self, username: str | None) -> ApiKey | None:
        return ApiKey("k1", "web", "write", 0.0) if username == GOOD else None


class FakeLimiter:
    def __init__(self, decision: Decision | None = None) -> None:
        self.decision = decision or Decision(True)
        self.taken: list[int] = []

    async def take(self, key: ApiKey, events: int) -> Decision:
        self.taken.append(events)
        return self.decision


class FakeIngestor:
    def __init__(self) -> None:
        self.records: list[dict] = []

    async def ingest(self, records: list, outcomes: list[Outcome], *, source: str,
                     source_kind: str) -> list[Outcome]:
        self.records.extend(r for r in records if r is not None)
        return list(outcomes)


def make_app(*, limiter: FakeLimiter | None = None, inflight: int = 64) -> web.Application:
    app = web.Application(middlewares=[server.errors_as_json, routes.inflight_limit(inflight)])
    app[routes.KEYS] = FakeKeys()  # type: ignore[assignment]
    app[routes.INGESTOR] = FakeIngestor()  # type: ignore[assignment]
    app[routes.LIMITS] = Limits()
    app[routes.RATE_LIMITER] = limiter or FakeLimiter()  # type: ignore[assignment]
    executor = ThreadPoolExecutor(2)
    app[routes.EXECUTOR] = executor

    async def close(_app: web.Application) -> None:
        executor.shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(close)
    routes.add_routes(app)
    app.router.add_get("/healthz", server._health)
    return app



def big_batch(messages: int = 200) -> bytes:
    batch = [{"type": "track", "userId": f"u{i}", "event": "Viewed", "properties": {"pad": "x" * 100}}
             for i in range(messages)]
    return json.dumps({"batch": batch}).encode()


def spin(seconds: float) -> None:
    """Busy CPU in Python, as a heavy validation is (it holds the GIL except at switch points)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        sum(range(100))


def test_a_heavy_batch_is_validated_off_the_loop_small_requests_are_answered_meanwhile(monkeypatch):
    real = routes._batch_records
    started = threading.Event()

    def heavy(*args: Any) -> Any:
        started.set()
        spin(0.6)
        return real(*args)

    monkeypatch.setattr(routes, "_batch_records", heavy)
    app = make_app()

    async def scenario(client: ClientSession) -> dict[str, float]:
        done: dict[str, float] = {}
        t0 = time.perf_counter()

        async def post_heavy() -> None:
            response = await client.post("/v1/batch", data=gzip.compress(big_batch()),
                                         headers={**AUTH, "Content-Encoding": "gzip"})
            assert response.status == 200, await response.text()
            done["heavy"] = time.perf_counter() - t0

        heavy_task = asyncio.create_task(post_heavy())
        while not started.is_set():
            await asyncio.sleep(0.005)
        sent = time.perf_counter()
        health = await client.get("/healthz")
        assert health.status == 200
        done["health"] = time.perf_counter() - sent
        small = await client.post("/v1/track", json={"userId": "u", "event": "E"}, headers=AUTH)
        assert small.status == 200, await small.text()
        done["small"] = time.perf_counter() - sent
        done["small_finished_while_heavy_ran"] = float(not heavy_task.done())
        await heavy_task
        return done

    done = serve(app, scenario)
    assert done["small_finished_while_heavy_ran"] == 1.0, done
    assert done["health"] < done["heavy"] / 4 and done["small"] < done["heavy"] / 2, done


def test_over_the_inflight_cap_a_collector_request_gets_a_fast_503(monkeypatch):
    release = threading.Event()
    real = routes._batch_records

    def blocked(*args: Any) -> Any:
        release.wait(10)
        return real(*args)

    monkeypatch.setattr(routes, "_batch_records", blocked)
    app = make_app(inflight=2)
    shed_before = metrics.REQUESTS_SHED._value.get()
    body = gzip.compress(big_batch(2))

    async def scenario(client: ClientSession) -> None:
        headers = {**AUTH, "Content-Encoding": "gzip"}
        first = [asyncio.create_task(client.post("/v1/batch", data=body, headers=headers)) for _ in range(2)]
        await asyncio.sleep(0.2)
        third = await client.post("/v1/batch", data=body, headers=headers)
        assert third.status == 503
        assert third.headers["Retry-After"] == "1"
        assert (await third.json())["error"]["reason"] == "overloaded"
        assert (await client.get("/healthz")).status == 200  # not a collector route: never shed
        release.set()
        assert [r.status for r in await asyncio.gather(*first)] == [200, 200]
        assert (await client.post("/v1/batch", data=body, headers=headers)).status == 200

    serve(app, scenario)
    assert metrics.REQUESTS_SHED._value.get() == shed_before + 1


def test_over_the_rate_a_429_with_retry_after_and_nothing_ingested():
    limiter = FakeLimiter(Decision(False, 3))
    app = make_app(limiter=limiter)
    counted = metrics.RATE_LIMITED.labels("web")._value.get()

    async def scenario(client: ClientSession) -> None:
        response = await client.post("/v1/batch", headers=AUTH, json={"batch": [
            {"type": "track", "userId": "u", "event": "E"}, {"type": "track", "userId": "u"}]})
        assert response.status == 429
        assert response.headers["Retry-After"] == "3"
        assert (await response.json())["error"] == {
            "field": "writeKey", "reason": "rate_limited",
            "message": "this write key is over its rate limit; retry in 3s"}
        single = await client.post("/v1/track", headers=AUTH, json={"userId": "u", "event": "E"})
        assert single.status == 429

    serve(app, scenario)
    assert limiter.taken == [2, 1]  # a batch costs its messages (rejected ones too), a call one
    assert app[routes.INGESTOR].records == []
    assert metrics.RATE_LIMITED.labels("web")._value.get() == counted + 2


def test_tokens_are_taken_before_anything_is_ingested_and_only_for_parsed_batches():
    limiter = FakeLimiter()
    app = make_app(limiter=limiter)

    async def scenario(client: ClientSession) -> None:
        assert (await client.post("/v1/batch", headers=AUTH, data=b"{nope")).status == 400
        ok = await client.post("/v1/batch", headers=AUTH, json={"batch": [
            {"type": "track", "userId": "u", "event": "E"}] * 3})
        assert ok.status == 200

    serve(app, scenario)
    assert limiter.taken == [3]


@pytest.mark.parametrize(("method", "path", "status", "field", "reason"), [
    ("GET", "/nowhere", 404, "path", "not_found"),
    ("GET", "/v1/batch", 405, "method", "method_not_allowed"),
    ("POST", "/v1/track", 401, "Authorization", "unknown_or_revoked_key"),
])
def test_framework_errors_are_json_naming_a_field(method: str, path: str, status: int, field: str,
                                                  reason: str):
    async def scenario(client: ClientSession) -> None:
        response = await client.request(method, path)
        assert response.status == status
        error = (await response.json())["error"]
        assert (error["field"], error["reason"]) == (field, reason)

    serve(make_app(), scenario)


def test_an_unexpected_error_is_a_logged_500_without_the_input(monkeypatch, caplog):
    def broken(*_args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(routes, "_single_record", broken)

    async def scenario(client: ClientSession) -> None:
        response = await client.post("/v1/track", headers=AUTH, json={"userId": "secret@example.com"})
        assert response.status == 500
        error = (await response.json())["error"]
        assert error["reason"] == "internal_error" and "secret" not in json.dumps(error)

    serve(make_app(), scenario)
    assert "unexpected error" in caplog.text and "secret@example.com" not in caplog.text


@pytest.mark.parametrize(("raw", "encoding", "field", "reason"), [
    (b'{"userId": "u", "event": "E", "properties": {"revenue": NaN}}', "", "properties.revenue",
     "bad_number"),
    (b'{"userId": "u", "event": "\\ud83d"}', "", "event", "bad_unicode"),
    (b'{"userId": "u", "event": "E", "properties": ' + b"[" * 40 + b"]" * 40 + b"}", "", None, "too_deep"),
    (b"[" * 3000 + b"]" * 3000, "", "body", "too_deep"),
    (b"{}", "br", "body", "unsupported_encoding"),
    (b"\x1f\x8bnot gzip", "gzip", "body", "malformed_gzip"),
])
def test_a_bad_single_call_is_a_400_naming_the_field(raw: bytes, encoding: str, field: str | None,
                                                     reason: str):
    async def scenario(client: ClientSession) -> dict:
        headers = {**AUTH, **({"Content-Encoding": encoding} if encoding else {})}
        response = await client.post("/v1/track", data=raw, headers=headers)
        assert response.status == 400
        return (await response.json())["error"]

    error = serve(make_app(), scenario)
    assert error["field"] == field or (field is None and error["field"].startswith("properties"))
    assert reason is None or error["reason"] == reason


def test_a_batch_with_bad_values_accepts_the_others():
    raw = (b'{"batch": [{"type": "track", "userId": "u", "event": "Good"},'
           b'{"type": "page", "anonymousId": "a", "name": "\\ud83d"},'
           b'{"type": "track", "userId": "u", "event": "E", "properties": {"n": 99999999999999999999999}},'
           b'{"type": "track", "userId": "u", "event": "E", "properties": {"r": -Infinity}}]}')
    app = make_app()

    async def scenario(client: ClientSession) -> dict:
        response = await client.post("/v1/batch", data=raw, headers=AUTH)
        assert response.status == 200
        return await response.json()

    answer = serve(app, scenario)
    assert answer["accepted"] == 1
    assert [(r["index"], r["field"], r["reason"]) for r in answer["rejected"]] == [
        (1, "name", "bad_unicode"), (2, "properties.n", "bad_number"), (3, "properties.r", "bad_number")]
    assert [r["event"] for r in app[routes.INGESTOR].records] == ["Good"]
