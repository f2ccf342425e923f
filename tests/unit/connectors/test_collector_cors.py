"""Browsers on the collector, in process (fake keys, limiter and ingestor; no Kafka, no Redis).

What is checked: preflights, the origin allow-list per write key (echoed only when allowed,
refused and counted otherwise), analytics.js's short paths with the key in a text/plain body,
RudderStack's beacon with the key in the URL, the SDK documents, and the API staying closed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import ClientSession, web

from apps import server
from connectors.collector import cors, routes, sdk_config
from connectors.outcome import Outcome
from connectors.ratelimit import Decision
from connectors.validation import Limits
from tests.unit.connectors.conftest import serve
from touchstream import metrics
from touchstream.keys import ApiKey, normalise_origin

SHOP = "https://shop.example.cn"
KEYS = {
    "browser-key": ApiKey("b1", "web", "write", 0.0, origins=(SHOP, "http://127.0.0.1:5000")),
    "any-site-key": ApiKey("a1", "anywhere", "write", 0.0, origins=("*",)),
    "server-key": ApiKey("s1", "backend", "write", 0.0),
}


class FakeKeys:
    async def check(self, key: str | None) -> ApiKey | None:
        return KEYS.get(key or "")


class FakeLimiter:
    async def take(self, key: ApiKey, events: int) -> Decision:
        return Decision(True)


class FakeIngestor:
    def __init__(self) -> None:
        self.records: list[dict] = []

    async def ingest(self, records: list, outcomes: list[Outcome], *, source: str,
                     source_kind: str) -> list[Outcome]:
        self.records.extend(r for r in records if r is not None)
        return list(outcomes)


def make_app() -> web.Application:
    app = web.Application(middlewares=[cors.cors_headers(), server.errors_as_json, routes.inflight_limit(64)])
    app[routes.KEYS] = FakeKeys()  # type: ignore[assignment]
    app[routes.INGESTOR] = FakeIngestor()  # type: ignore[assignment]
    app[routes.LIMITS] = Limits()
    app[routes.RATE_LIMITER] = FakeLimiter()  # type: ignore[assignment]
    routes.add_routes(app)
    sdk_config.add_routes(app)

    async def profile(_request: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_get("/v1/profiles/{oneid}", profile)
    return app


def run(scenario: Callable[[ClientSession], Awaitable[Any]]) -> tuple[Any, web.Application]:
    app = make_app()
    return serve(app, scenario), app


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def text_plain(body: dict, origin: str | None = None) -> dict[str, Any]:
    """A post as navigator.sendBeacon and analytics.js make it: a text/plain JSON body."""
    headers = {"Content-Type": "text/plain;charset=UTF-8"}
    if origin is not None:
        headers["Origin"] = origin
    return {"data": json.dumps(body), "headers": headers}


@pytest.mark.parametrize("path", ["/v1/t", "/v1/b", "/v1/track", "/v1/batch", "/beacon/v1/batch",
                                  "/sourceConfig/", "/v1/projects/anything/settings"])
def test_a_preflight_is_answered_for_the_sdks_methods_and_headers(path: str) -> None:
    async def scenario(client: ClientSession) -> None:
        response = await client.options(path, headers={
            "Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "https://elsewhere.example"
        allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
        assert {"authorization", "content-type", "x-retry-count", "anonymousid", "sentat"} <= allowed
        assert response.headers["Vary"] == "Origin"
        assert int(response.headers["Access-Control-Max-Age"]) > 0
        private = await client.options(path, headers={
            "Origin": SHOP, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Private-Network": "true"})
        assert private.headers["Access-Control-Allow-Private-Network"] == "true"

    run(scenario)


def test_analytics_js_short_paths_with_the_key_in_a_text_plain_body() -> None:
    async def scenario(client: ClientSession) -> list[int]:
        statuses = []
        for letter in "tpigas":
            message = {"writeKey": "browser-key", "anonymousId": "a-1", "userId": "u-1", "event": "Viewed",
                       "groupId": "g", "previousId": "p", "messageId": f"m-{letter}"}
            response = await client.post(f"/v1/{letter}", **text_plain(message, SHOP))
            assert response.headers["Access-Control-Allow-Origin"] == SHOP, await response.text()
            assert response.headers["Access-Control-Expose-Headers"] == "Retry-After"
            statuses.append(response.status)
        batch = {"writeKey": "browser-key", "batch": [
            {"type": "track", "anonymousId": "a-1", "event": "E", "messageId": "m-b",
             "writeKey": "browser-key"}]}
        response = await client.post("/v1/b", data=json.dumps(batch), headers={"Origin": SHOP})
        statuses.append(response.status)
        return statuses

    statuses, app = run(scenario)
    assert statuses == [200] * 7
    records = app[routes.INGESTOR].records
    assert [r["type"] for r in records] == ["track", "page", "identify", "group", "alias", "screen", "track"]
    assert {r["source"] for r in records} == {"web"}


def test_a_refused_origin_gets_a_403_naming_origin_is_counted_and_nothing_is_ingested() -> None:
    before = metrics.ORIGINS_REFUSED.labels("web")._value.get()
    before_server = metrics.ORIGINS_REFUSED.labels("backend")._value.get()

    async def scenario(client: ClientSession) -> None:
        for key, origin in (("browser-key", "https://evil.example"), ("browser-key", "https://shop.example.cn.evil"),
                            ("server-key", SHOP)):
            response = await client.post("/v1/t", **text_plain(
                {"writeKey": key, "anonymousId": "a", "event": "E"}, origin))
            assert response.status == 403
            assert "Access-Control-Allow-Origin" not in response.headers
            error = (await response.json())["error"]
            assert (error["field"], error["reason"]) == ("Origin", "origin_not_allowed")

    _, app = run(scenario)
    assert app[routes.INGESTOR].records == []
    assert metrics.ORIGINS_REFUSED.labels("web")._value.get() == before + 2
    assert metrics.ORIGINS_REFUSED.labels("backend")._value.get() == before_server + 1


def test_star_allows_any_site_and_requests_without_origin_are_not_browsers() -> None:
    async def scenario(client: ClientSession) -> None:
        anywhere = await client.post("/v1/track", json={"userId": "u", "event": "E"},
                                     headers={**basic("any-site-key"), "Origin": "https://any.example"})
        assert anywhere.status == 200
        assert anywhere.headers["Access-Control-Allow-Origin"] == "https://any.example"
        server_side = await client.post("/v1/track", json={"userId": "u", "event": "E"},
                                        headers=basic("server-key"))
        assert server_side.status == 200
        assert "Access-Control-Allow-Origin" not in server_side.headers

    run(scenario)


def test_an_allowed_origin_can_read_the_sdks_errors_a_wrong_key_names_write_key() -> None:
    async def scenario(client: ClientSession) -> None:
        bad = await client.post("/v1/t", **text_plain({"writeKey": "browser-key", "event": "E"}, SHOP))
        assert bad.status == 400 and bad.headers["Access-Control-Allow-Origin"] == SHOP
        assert (await bad.json())["error"]["field"] == "userId"
        wrong = await client.post("/v1/t", **text_plain({"writeKey": "no", "anonymousId": "a", "event": "E"}))
        assert wrong.status == 401 and (await wrong.json())["error"]["field"] == "writeKey"
        missing = await client.post("/v1/t", **text_plain({"anonymousId": "a", "event": "E"}))
        assert missing.status == 401 and (await missing.json())["error"]["field"] == "Authorization"

    run(scenario)


def test_rudderstack_beacon_takes_the_key_from_the_url() -> None:
    body = {"batch": [{"type": "track", "anonymousId": "a", "event": "Page Left", "messageId": "beacon-1"}],
            "sentAt": "2026-01-01T00:00:00.000Z"}

    async def scenario(client: ClientSession) -> int:
        response = await client.post("/beacon/v1/batch?writeKey=browser-key", **text_plain(body, SHOP))
        return response.status

    status, app = run(scenario)
    assert status == 200
    assert [r["event"] for r in app[routes.INGESTOR].records] == ["Page Left"]


def test_the_sdk_documents_point_back_at_the_collector() -> None:
    async def scenario(client: ClientSession) -> tuple[dict, dict, int, int]:
        segment = await client.get("/v1/projects/browser-key/settings", headers={"Origin": SHOP})
        assert segment.headers["Access-Control-Allow-Origin"] == SHOP
        assert "Origin" in segment.headers["Vary"]
        rudder = await client.get("/sourceConfig/?writeKey=browser-key&p=npm", headers={"Origin": SHOP})
        assert rudder.headers["Access-Control-Allow-Origin"] == SHOP
        refused = await client.get("/v1/projects/browser-key/settings", headers={"Origin": "https://evil.example"})
        unknown = await client.get("/v1/projects/nope/settings")
        return await segment.json(), await rudder.json(), refused.status, unknown.status

    (segment, rudder, refused, unknown), _ = run(scenario)
    integration = segment["integrations"]["Segment.io"]
    assert integration["apiKey"] == "browser-key"
    assert integration["apiHost"].startswith("127.0.0.1:") and integration["apiHost"].endswith("/v1")
    assert integration["protocol"] == "http"
    assert list(segment["integrations"]) == ["Segment.io"] and segment["metrics"]["sampleRate"] == 0
    assert rudder["source"]["enabled"] is True and rudder["source"]["destinations"] == []
    assert rudder["source"]["id"] == "b1"
    assert (refused, unknown) == (403, 401)


def test_the_read_api_answers_no_preflight_and_echoes_no_origin() -> None:
    async def scenario(client: ClientSession) -> None:
        preflight = await client.options("/v1/profiles/x", headers={
            "Origin": SHOP, "Access-Control-Request-Method": "GET"})
        assert preflight.status == 405
        assert "Access-Control-Allow-Origin" not in preflight.headers
        read = await client.get("/v1/profiles/x", headers={"Origin": SHOP})
        assert "Access-Control-Allow-Origin" not in read.headers

    run(scenario)


@pytest.mark.parametrize(("given", "kept"), [
    ("https://Shop.Example.CN/", "https://shop.example.cn"),
    ("https://shop.example.cn:443", "https://shop.example.cn"),
    ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ("*", "*"),
])
def test_origins_are_kept_as_browsers_send_them(given: str, kept: str) -> None:
    assert normalise_origin(given) == kept


@pytest.mark.parametrize("bad", ["shop.example.cn", "ftp://x.cn", "https://x.cn/path", "https://u@x.cn",
                                 "https://x.cn:99999", "https://"])
def test_an_origin_that_is_not_scheme_host_port_is_refused_at_creation(bad: str) -> None:
    with pytest.raises(ValueError, match="origin"):
        normalise_origin(bad)


def test_a_body_that_does_not_spell_write_key_is_refused_unparsed(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_args: object) -> None:
        raise AssertionError("a body without a key was parsed")

    monkeypatch.setattr(routes, "decode_body", never)
    batch = {"batch": [{"type": "track", "anonymousId": "a", "event": "E"}] * 500}

    async def scenario(client: ClientSession) -> tuple[int, str]:
        response = await client.post("/v1/b", **text_plain(batch, SHOP))
        return response.status, (await response.json())["error"]["field"]

    (status, field), app = run(scenario)
    assert (status, field) == (401, "Authorization")
    assert app[routes.INGESTOR].records == []
