"""Integration fixtures: start the project's own stack and give each test run unique names."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
import redis

from streams.topics import create_topics
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
        worker_web_port=16066,
        http_port=18080,
    )
    create_topics(settings)
    return settings


@pytest.fixture()
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
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
        proc = subprocess.Popen([sys.executable, "-m", "touchstream.cli", "serve"], env=env,
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
    result = subprocess.run([sys.executable, "-m", "touchstream.cli", *args], env=settings_env(settings),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="session")
def write_key(settings: Settings) -> str:
    return cli(settings, "keys", "create", "--scope", "write", "--name", "web").strip()


@pytest.fixture(scope="session")
def read_key(settings: Settings) -> str:
    return cli(settings, "keys", "create", "--scope", "read", "--name", "analyst").strip()
