import logging
import socket
import time

import pytest
from confluent_kafka import Producer

from streams.producers import producer_config


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_librdkafka_lines_go_through_logging_not_stderr(caplog: pytest.LogCaptureFixture,
                                                      capfd: pytest.CaptureFixture[str]) -> None:
    producer = Producer(producer_config(f"127.0.0.1:{_closed_port()}"))
    with caplog.at_level(logging.DEBUG, logger="librdkafka"):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any(r.name == "librdkafka" for r in caplog.records):
            producer.poll(0.2)
    assert any(r.name == "librdkafka" and "Connection refused" in r.getMessage() for r in caplog.records)
    assert "Connection refused" not in capfd.readouterr().err
