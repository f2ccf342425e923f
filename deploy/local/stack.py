#!/usr/bin/env python3
"""The local stack without Docker: an Apache Kafka 4.x broker (KRaft) and Redis.

Standard library only, so it runs before the project's virtualenv exists.

    python3 deploy/local/stack.py up       # fetch what is missing, start, wait until both answer
    python3 deploy/local/stack.py down     # stop exactly what `up` started (pid files)
    python3 deploy/local/stack.py status

Kafka comes from the Apache Kafka artifacts on Maven Central (``deploy/local/pom.xml``,
copied into ``.local/kafka/libs`` by Maven) and runs on the machine's Java 17 in combined
broker+controller mode on 127.0.0.1:9092 (controller 127.0.0.1:9093). Redis is Debian's
``redis-server`` on 127.0.0.1:6379 with AOF persistence. A Redis that already answers on
its port is used as it is and never stopped by ``down``. ``up`` also writes the stack's pseudonym
secret (``.local/pseudonym.secret``) once: the settings read it when ``TOUCHSTREAM_PSEUDONYM_SECRET``
is empty.
"""

from __future__ import annotations

import argparse
import base64
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
LOCAL = ROOT / ".local"
# The jars are shared by every stack of this checkout; data and pid files are per stack.
KAFKA_LIBS = LOCAL / "kafka" / "libs"


class StackError(RuntimeError):
    """Raised with one line that says what to do."""


@dataclass(frozen=True)
class Ports:
    kafka: int = 9092
    controller: int = 9093
    redis: int = 6379


# --------------------------------------------------------------------------- probes


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def redis_answers(port: int) -> bool:
    """True when a Redis server answers PING on the port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            reply = sock.recv(64)
            return reply.startswith(b"+PONG") or reply.startswith(b"-NOAUTH")
    except OSError:
        return False


def kafka_answers(port: int) -> bool:
    """True when a Kafka broker answers an ApiVersions request (not merely an open port)."""
    client_id = b"touchstream-stack"
    header = struct.pack(">hhih", 18, 0, 1, len(client_id)) + client_id
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
            sock.settimeout(2.0)
            sock.sendall(struct.pack(">i", len(header)) + header)
            size = struct.unpack(">i", _recv_exact(sock, 4))[0]
            body = _recv_exact(sock, size)
            correlation_id, error_code = struct.unpack(">ih", body[:6])
            return correlation_id == 1 and error_code == 0
    except (OSError, struct.error):
        return False


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise OSError("connection closed")
        buf += chunk
    return buf


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still "exists"; treat it as dead.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def _read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def _wait(predicate, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    tail = ""
    if log is not None and log.exists():
        last = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        tail = f"\n--- last lines of {log} ---\n{last}"
    raise StackError(f"{what} did not become ready within {timeout:.0f}s{tail}")


# --------------------------------------------------------------------------- the stack


@dataclass(frozen=True)
class Stack:
    """One local Kafka + Redis pair: its data folder and ports.

    The default is the project's stack (``.local/``, 9092/9093/6379); tests build a second,
    isolated one on other ports to check that ``down`` stops exactly what ``up`` started.
    """

    local: Path = LOCAL
    ports: Ports = Ports()
    #: broker properties appended to the rendered file (later keys win): a test's TLS/SASL listener
    extra_kafka_config: str = ""

    @property
    def kafka_dir(self) -> Path:
        return self.local / "kafka"

    @property
    def redis_dir(self) -> Path:
        return self.local / "redis"

    @property
    def kafka_pid_file(self) -> Path:
        return self.kafka_dir / "kafka.pid"

    @property
    def redis_pid_file(self) -> Path:
        return self.redis_dir / "redis.pid"

    # ----------------------------------------------------------------- Kafka

    def _write_kafka_config(self) -> Path:
        template = (HERE / "kafka.properties").read_text()
        config = template.format(
            kafka_port=self.ports.kafka,
            controller_port=self.ports.controller,
            data_dir=self.kafka_dir / "data",
        )
        if self.extra_kafka_config:
            config += "\n# overrides\n" + self.extra_kafka_config.strip() + "\n"
        path = self.kafka_dir / "server.properties"
        path.write_text(config)
        return path

    def start_kafka(self) -> str:
        if _read_pid(self.kafka_pid_file) is not None:
            return "kafka: already running (ours)"
        if kafka_answers(self.ports.kafka):
            return f"kafka: a broker already answers on {self.ports.kafka}; using it"
        if port_open(self.ports.kafka) or port_open(self.ports.controller):
            raise StackError(
                f"ports {self.ports.kafka}/{self.ports.controller} are taken by something that is not Kafka"
            )
        if shutil.which("java") is None:
            raise StackError("Java 17 is missing: install it (apt-get install -y openjdk-17-jre-headless).")
        ensure_kafka_libs()
        self.kafka_dir.mkdir(parents=True, exist_ok=True)
        config = self._write_kafka_config()
        if not (self.kafka_dir / "data" / "meta.properties").exists():
            cluster_id = _kafka_cluster_id()
            fmt = [*_java(), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)]
            result = subprocess.run(fmt, capture_output=True, text=True)
            if result.returncode != 0:
                raise StackError("formatting Kafka storage failed:\n" + result.stdout + result.stderr)
        with open(self.kafka_dir / "server.log", "ab") as out:
            proc = subprocess.Popen(
                [*_java(), "kafka.Kafka", str(config)],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=self.kafka_dir,
            )
        self.kafka_pid_file.write_text(f"{proc.pid}\n")
        return "kafka: started"

    # ----------------------------------------------------------------- Redis

    def start_redis(self) -> str:
        if _read_pid(self.redis_pid_file) is not None:
            return "redis: already running (ours)"
        if redis_answers(self.ports.redis):
            return f"redis: a server already answers on {self.ports.redis}; using it"
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("redis-server is missing: install it (apt-get install -y redis-server).")
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            binary, "--bind", "127.0.0.1", "--port", str(self.ports.redis), "--dir", str(self.redis_dir),
            "--appendonly", "yes", "--appendfsync", "everysec", "--save", "",
            # compact listpack hashes for profiles, timers and claim shards (see ARCHITECTURE)
            "--hash-max-listpack-entries", "512", "--hash-max-listpack-value", "256",
            "--lazyfree-lazy-expire", "yes",  # an expiring claim generation is one big hash
            "--daemonize", "yes", "--pidfile", str(self.redis_pid_file),
            "--logfile", str(self.redis_dir / "redis.log"),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError("redis-server failed to start:\n" + result.stdout + result.stderr)
        # --daemonize writes the pid file a moment after the parent exits.
        _wait(lambda: _read_pid(self.redis_pid_file) is not None, 10, "redis pid file")
        return "redis: started"

    # ----------------------------------------------------------------- lifecycle

    def up(self, timeout: float = 120.0) -> list[str]:
        """Start Redis and Kafka (each only if needed) and wait until both answer."""
        self.local.mkdir(parents=True, exist_ok=True)
        lines = [self.start_redis(), self.start_kafka()]
        if ensure_pseudonym_secret(self.local / "pseudonym.secret"):
            lines.append(f"pseudonym secret: written to {self.local / 'pseudonym.secret'}")
        _wait(lambda: redis_answers(self.ports.redis), timeout, "redis", self.redis_dir / "redis.log")
        _wait(lambda: kafka_answers(self.ports.kafka), timeout, "kafka", self.kafka_dir / "server.log")
        return lines

    def down(self) -> list[str]:
        """Stop exactly what `up` started, as recorded in the pid files."""
        return [_stop(self.kafka_pid_file, "kafka"), _stop(self.redis_pid_file, "redis")]

    def kill_kafka(self) -> None:
        """SIGKILL our broker (fault injection); `up` brings it back with its data."""
        _kill(self.kafka_pid_file)

    def kill_redis(self) -> None:
        """SIGKILL our Redis (fault injection); `up` brings it back from its AOF."""
        _kill(self.redis_pid_file)

    def restart_redis(self, timeout: float = 60.0) -> None:
        """Stop our Redis cleanly (the AOF is flushed) and start it again from its AOF."""
        _stop(self.redis_pid_file, "redis")
        self.start_redis()
        _wait(lambda: redis_answers(self.ports.redis), timeout, "redis", self.redis_dir / "redis.log")

    def restart_kafka(self, timeout: float = 120.0) -> None:
        """Stop our broker (controlled shutdown) and start it again with its data."""
        _stop(self.kafka_pid_file, "kafka")
        self.start_kafka()
        _wait(lambda: kafka_answers(self.ports.kafka), timeout, "kafka", self.kafka_dir / "server.log")

    def status(self) -> list[str]:
        return [
            f"redis  :{self.ports.redis}  answers={redis_answers(self.ports.redis)}"
            f"  ours_pid={_read_pid(self.redis_pid_file)}",
            f"kafka  :{self.ports.kafka}  answers={kafka_answers(self.ports.kafka)}"
            f"  ours_pid={_read_pid(self.kafka_pid_file)}",
        ]


def ensure_kafka_libs() -> None:
    """Copy the Kafka broker jars from Maven Central into .local/kafka/libs once."""
    marker = KAFKA_LIBS / ".complete"
    if marker.exists():
        return
    if shutil.which("java") is None:
        raise StackError("Java 17 is missing: install it (apt-get install -y openjdk-17-jre-headless).")
    if shutil.which("mvn") is None:
        raise StackError("Maven is missing: install it (apt-get install -y maven).")
    if KAFKA_LIBS.exists():
        shutil.rmtree(KAFKA_LIBS)
    KAFKA_LIBS.mkdir(parents=True)
    cmd = [
        "mvn", "-q", "-B", "-f", str(HERE / "pom.xml"), "dependency:copy-dependencies",
        "-DincludeScope=runtime", f"-DoutputDirectory={KAFKA_LIBS}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise StackError("Maven could not fetch the Kafka artifacts:\n" + result.stdout + result.stderr)
    marker.write_text("ok\n")


def _java() -> list[str]:
    return [
        "java", "-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={HERE / 'log4j2.properties'}",
        "-cp", f"{KAFKA_LIBS}/*",
    ]


def _kafka_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, never starting with
    '-' (kafka-storage would read it as an option: 1 run in 64 failed; Kafka's own Uuid.randomUuid
    draws again for the same reason)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _stop(pid_file: Path, name: str, timeout: float = 30.0) -> str:
    pid = _read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return f"{name}: not running (ours)"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _pid_alive(pid):
        time.sleep(0.1)
    if _pid_alive(pid):
        _kill(pid_file)
    pid_file.unlink(missing_ok=True)
    return f"{name}: stopped"


def _kill(pid_file: Path) -> None:
    pid = _read_pid(pid_file)
    if pid is None:
        return
    os.kill(pid, signal.SIGKILL)
    while _pid_alive(pid):
        time.sleep(0.05)


def ensure_pseudonym_secret(path: Path) -> bool:
    """The key of the identifiers' pseudonyms for this stack (touchstream/pseudonyms.py, stdlib
    only, loaded from the checkout): written once, never replaced, since every OneID issued and
    every suppression entry depends on it. True when written now."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from touchstream.pseudonyms import ensure_secret_file

    return ensure_secret_file(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["up", "down", "status", "fetch"])
    args = parser.parse_args(argv)
    started = time.monotonic()
    stack = Stack()
    try:
        if args.command == "up":
            lines = stack.up()
            lines.append(f"stack ready in {time.monotonic() - started:.1f}s")
        elif args.command == "down":
            lines = stack.down()
        elif args.command == "fetch":
            ensure_kafka_libs()
            lines = [f"kafka libs ready in {time.monotonic() - started:.1f}s"]
        else:
            lines = stack.status()
    except StackError as exc:
        print(f"stack: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
