import json
import socket
import urllib.error
import urllib.request

from streams.ops_http import readiness, serve_ops


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _down() -> None:
    raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


def test_ready_only_when_every_check_passes_and_the_failure_is_named() -> None:
    assert readiness({"redis": lambda: None, "kafka": lambda: None}) == (True, {"redis": "ok", "kafka": "ok"})
    assert readiness({"redis": _down, "kafka": lambda: None}) == (
        False, {"redis": "ConnectionError", "kafka": "ok"})


def test_the_ops_port_answers_health_readiness_and_metrics() -> None:
    port = _port()
    server = serve_ops("127.0.0.1", port, {"redis": _down})
    try:
        base = f"http://127.0.0.1:{port}"
        assert _get(base + "/healthz") == (200, b'{"status":"ok"}')
        status, body = _get(base + "/readyz")
        assert status == 503
        assert json.loads(body) == {"status": "unavailable", "checks": {"redis": "ConnectionError"}}
        status, body = _get(base + "/metrics")
        assert status == 200 and b"python_info" in body
        assert _get(base + "/nothing")[0] == 404
    finally:
        server.shutdown()
