"""Every process answers /healthz (alive) and /readyz (Kafka and Redis answer) on the real stack."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import replace

from aiohttp import web

from apps.server import create_app
from tests.integration.conftest import free_port, wait_http


def _get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_the_collector_and_the_worker_are_ready_on_a_running_stack(collector, worker):
    ready = {"status": "ready", "checks": {"redis": "ok", "kafka": "ok"}}
    assert _get(collector + "/readyz") == (200, ready)
    assert _get(collector + "/healthz") == (200, {"status": "ok"})
    ops = f"http://{worker.settings.http_host}:{worker.settings.worker_web_port}"
    wait_http(ops + "/healthz", proc=worker.proc)  # the worker may still be starting
    assert _get(ops + "/readyz") == (200, ready)
    assert _get(ops + "/healthz") == (200, {"status": "ok"})


def test_a_collector_whose_redis_is_gone_is_alive_but_not_ready(settings):
    """Liveness stays 200 (no restart loop while a dependency is down); readiness names Redis."""
    gone = replace(settings, redis_url=f"redis://127.0.0.1:{free_port()}/0", http_port=free_port())

    async def probe() -> tuple[tuple[int, dict], tuple[int, dict]]:
        runner = web.AppRunner(create_app(gone))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", gone.http_port)
        await site.start()
        try:
            base = f"http://127.0.0.1:{gone.http_port}"
            return (await asyncio.to_thread(_get, base + "/healthz"),
                    await asyncio.to_thread(_get, base + "/readyz"))
        finally:
            await runner.cleanup()

    health, ready = asyncio.run(probe())
    assert health == (200, {"status": "ok"})
    assert ready[0] == 503 and ready[1]["status"] == "unavailable"
    assert ready[1]["checks"]["redis"] == "ConnectionError" and ready[1]["checks"]["kafka"] == "ok"
