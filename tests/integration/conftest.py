"""Integration fixtures: start the project's own stack and give each test run unique names."""

from __future__ import annotations

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
