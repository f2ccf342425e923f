"""Every Kafka client of the platform speaks TLS and SASL when the deployment asks for it.

A second, real broker is started with only a SASL_SSL listener for clients (PLAIN over TLS, a
certificate from a throw-away CA made with openssl). The project's own processes (the admin
client of ``topics create``, the collector's producer, the worker's consumers and producers) are
pointed at it through ``TOUCHSTREAM_KAFKA_OPTIONS`` and one event must come out resolved; a wrong
password and a client without the options are refused.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from schemas.codec import EVENT, default_registry
from tests.conftest import load_stack_module
from tests.integration.conftest import (
    CliProcess,
    WorkerProcess,
    cli,
    free_port,
    iso,
    post,
    settings_env,
    wait_http,
)

stack_module = load_stack_module()
PASSWORD = "ts-" + uuid.uuid4().hex


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> tuple[Path, Path]:
    """A CA and a server key + certificate for 127.0.0.1 signed by it: (ca.pem, server keystore PEM)."""
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
             "-days", "2", "-subj", "/CN=touchstream-test-ca", cwd=folder)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
             "-subj", "/CN=localhost", cwd=folder)
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-out", "server.crt", "-days", "2", "-extfile", "san.ext", cwd=folder)
    keystore = folder / "server.pem"  # Kafka's PEM keystore: the PKCS#8 key, then the chain
    keystore.write_text((folder / "server.key").read_text() + (folder / "server.crt").read_text())
    return folder / "ca.pem", keystore


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory, stack):  # the shared stack gives the tests their Redis
    folder = tmp_path_factory.mktemp("secured-kafka")
    ca, keystore = make_certificates(folder)
    ports = stack_module.Ports(kafka=free_port(), controller=free_port(), redis=free_port())
    sasl_port = free_port()
    jaas = f'org.apache.kafka.common.security.plain.PlainLoginModule required user_touchstream="{PASSWORD}";'
    extra = "\n".join([
        f"listeners=PLAINTEXT://127.0.0.1:{ports.kafka},SASL_SSL://127.0.0.1:{sasl_port},"
        f"CONTROLLER://127.0.0.1:{ports.controller}",
        f"advertised.listeners=PLAINTEXT://127.0.0.1:{ports.kafka},SASL_SSL://127.0.0.1:{sasl_port}",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms=PLAIN",
        f"listener.name.sasl_ssl.plain.sasl.jaas.config={jaas}",
        "listener.name.sasl_ssl.ssl.keystore.type=PEM",
        f"listener.name.sasl_ssl.ssl.keystore.location={keystore}",
    ])
    broker = stack_module.Stack(local=folder / "stack", ports=ports, extra_kafka_config=extra)
    broker.start_kafka()
    try:
        deadline = time.monotonic() + 120
        while not stack_module.kafka_answers(ports.kafka):
            assert time.monotonic() < deadline, (folder / "stack/kafka/server.log").read_text()[-3000:]
            time.sleep(0.5)
        yield f"127.0.0.1:{sasl_port}", ca
    finally:
        broker.down()


def _options(ca: Path, password: str) -> str:
    return (f"security.protocol=SASL_SSL;sasl.mechanisms=PLAIN;sasl.username=touchstream;"
            f"sasl.password={password};ssl.ca.location={ca}")


def test_collector_and_worker_run_over_tls_with_sasl(settings, secured_broker, tmp_path):
    address, ca = secured_broker
    run = uuid.uuid4().hex[:8]
    secured = replace(settings, broker=address, kafka_options=_options(ca, PASSWORD),
                      topic_prefix=f"sec-{run}", app_id=f"sec-{run}", redis_prefix=f"sec:{run}:",
                      http_port=free_port(), http_ops_port=0, partitions=2)
    created = cli(secured, "topics", "create")  # the admin client, over SASL_SSL
    assert f"sec-{run}.events.raw: created" in created
    key = cli(secured, "keys", "create", "--scope", "write", "--name", "sec").strip()
    serve = CliProcess(secured, tmp_path / "serve.log")
    serve.command = ("serve",)
    serve.start()
    worker = WorkerProcess(secured, tmp_path / "worker.log", free_port()).start()
    base = f"http://{secured.http_host}:{secured.http_port}"
    try:
        wait_http(base + "/readyz", timeout=60, proc=serve.proc)  # readiness asks the secured broker
        event = {"messageId": f"sec-{run}", "userId": f"u-{run}", "event": "Signed Up",
                 "timestamp": iso(int(time.time() * 1000))}
        assert post(base + "/v1/track", event, key=key)[0] == 200  # the collector's producer
        consumer = Consumer({"bootstrap.servers": address, "group.id": f"r-{run}",
                             "auto.offset.reset": "earliest", **dict(
                                 item.split("=", 1) for item in _options(ca, PASSWORD).split(";"))})
        consumer.subscribe([f"sec-{run}.events.resolved"])  # the worker consumed raw, produced resolved
        decode = default_registry().decoder(EVENT)
        found = None
        deadline = time.monotonic() + 90
        while found is None and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                record = decode(msg.value())
                if record["message_id"] == f"sec-{run}":
                    found = record
        consumer.close()
        assert found is not None, (tmp_path / "worker.log").read_text()[-3000:]
        assert found["oneid"]
    finally:
        serve.stop()
        worker.stop()


def test_a_wrong_password_or_no_security_options_is_refused(settings, secured_broker):
    address, ca = secured_broker
    wrong = replace(settings, broker=address, kafka_options=_options(ca, "not-the-password"),
                    topic_prefix=f"bad-{uuid.uuid4().hex[:8]}")
    result = subprocess.run([sys.executable, "-m", "apps.cli", "topics", "create"], env=settings_env(wrong),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert "did not answer" in result.stderr and "TOUCHSTREAM_KAFKA_OPTIONS" in result.stderr
    assert "SASL authentication" in result.stderr or "Authentication failed" in result.stderr, result.stderr
    assert "not-the-password" not in result.stderr  # the secret never reaches a log line
    plain = Consumer({"bootstrap.servers": address, "group.id": "plain", "socket.timeout.ms": 3000})
    try:
        assert plain.list_topics(timeout=5).topics == {}
    except Exception as exc:  # refused outright: the listener speaks TLS only
        assert "Timed out" in str(exc) or "transport" in str(exc).lower(), exc
    finally:
        plain.close()
