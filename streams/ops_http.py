"""The ops port every background process serves: ``/metrics``, ``/healthz`` and ``/readyz``.

``/healthz`` answers 200 while the process runs (a liveness probe restarts a hung pod, never a
healthy one waiting for Kafka). ``/readyz`` answers 200 only when every check passes (Redis
answers PING, Kafka answers a metadata request), else 503 naming the failing checks: a
readiness probe takes the pod out of rotation while its dependencies are down. ``/metrics`` is
prometheus_client's exposition. A stdlib threading server: no event loop in the worker.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from confluent_kafka.admin import AdminClient
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.clients import client_config

log = logging.getLogger(__name__)

#: a readiness check raises (anything) when its dependency does not answer
Check = Callable[[], None]


def redis_check(client: object) -> Check:
    """Redis answers PING."""

    def check() -> None:
        client.ping()  # type: ignore[attr-defined]  # a redis.Redis

    return check


def kafka_check(bootstrap: str, timeout_s: float = 2.0, **config: str) -> Check:
    """Kafka answers a metadata request within ``timeout_s``."""
    admin = AdminClient(client_config(bootstrap, **config))

    def check() -> None:
        admin.list_topics(timeout=timeout_s)

    return check


def readiness(checks: Mapping[str, Check]) -> tuple[bool, dict[str, str]]:
    """(all passed, ``{name: "ok" | error class}``); the error's text stays in the log only."""
    report: dict[str, str] = {}
    for name, check in checks.items():
        try:
            check()
            report[name] = "ok"
        except Exception as exc:  # a check's failure is the answer, whatever it raised
            log.warning("readiness check %s failed: %s", name, exc)
            report[name] = type(exc).__name__
    return all(v == "ok" for v in report.values()), report


def serve_ops(host: str, port: int, checks: Mapping[str, Check]) -> ThreadingHTTPServer:
    """Serve the ops port in a daemon thread; ``server.shutdown()`` stops it."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, generate_latest(), CONTENT_TYPE_LATEST)
            elif path == "/healthz":
                self._send(200, b'{"status":"ok"}', "application/json")
            elif path == "/readyz":
                ready, report = readiness(checks)
                body = json.dumps({"status": "ready" if ready else "unavailable", "checks": report})
                self._send(200 if ready else 503, body.encode(), "application/json")
            else:
                self._send(404, b'{"error":"not found"}', "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would drown the log

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"ops:{port}", daemon=True).start()
    return server
