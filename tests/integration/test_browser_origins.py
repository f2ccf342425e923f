"""Browser keys on the real stack: `keys create --origin`, the allow-list, analytics.js's wire format."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

from tests.integration.conftest import cli, metric, raw_records

SHOP = "https://shop.example.cn"


def send(url: str, body: object, headers: dict[str, str], method: str = "POST") -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            return response.status, dict(response.headers), json.loads(raw) if raw else {}
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def test_a_browser_key_takes_text_plain_short_paths_from_its_origins_only(collector, settings):
    key = cli(settings, "keys", "create", "--scope", "write", "--name", "shop-web", "--origin", SHOP,
              "--origin", "https://m.shop.example.cn/").strip()
    marker = f"origins-{uuid.uuid4().hex[:8]}"
    plain = {"Content-Type": "text/plain;charset=UTF-8"}
    status, headers, body = send(collector + "/v1/t", {
        "writeKey": key, "anonymousId": "a-web", "event": "Viewed Pricing", "messageId": f"{marker}-t"},
        {**plain, "Origin": "https://m.shop.example.cn"})
    assert (status, body["success"]) == (200, True), body
    assert headers["Access-Control-Allow-Origin"] == "https://m.shop.example.cn"

    refused_before = metric(collector, "touchstream_origins_refused_total", source="shop-web")
    status, headers, body = send(collector + "/v1/t", {
        "writeKey": key, "anonymousId": "a-web", "event": "Stolen Key", "messageId": f"{marker}-x"},
        {**plain, "Origin": "https://copycat.example"})
    assert status == 403 and body["error"]["field"] == "Origin", body
    assert "Access-Control-Allow-Origin" not in headers
    assert metric(collector, "touchstream_origins_refused_total", source="shop-web") == refused_before + 1

    status, headers, _ = send(collector + "/v1/b", None, {
        "Origin": SHOP, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"}, method="OPTIONS")
    assert status == 204 and headers["Access-Control-Allow-Origin"] == SHOP

    records = raw_records(settings, marker)
    assert [r["event"] for r in records] == ["Viewed Pricing"]
    assert records[0]["source"] == "shop-web"


def test_origins_are_for_write_keys_and_must_be_origins(settings):
    import subprocess
    import sys

    from tests.integration.conftest import settings_env

    for args in (["--scope", "read", "--origin", SHOP], ["--scope", "write", "--origin", "shop.example.cn"]):
        result = subprocess.run([sys.executable, "-m", "apps.cli", "keys", "create", "--name", "x", *args],
                                env=settings_env(settings), capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and "origin" in result.stderr.lower(), result.stderr
