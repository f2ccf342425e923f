"""What the lake sink and the query side need, built from Settings by ``apps/factory.py``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LakeConfig:
    """The lake's folder, how files roll, and where the sink reads from."""

    path: Path
    roll_bytes: int = 128 * 1024 * 1024
    roll_s: float = 60.0
    broker: str = "127.0.0.1:9092"
    group: str = "touchstream-lake"
    topic_prefix: str = "touchstream"
    deadletter_topic: str = "touchstream.deadletter"
    batch_size: int = 5000
    within_s: float = 0.25
    metrics_host: str = "127.0.0.1"
    metrics_port: int = 0  # 0: no /metrics

    def topic(self, suffix: str) -> str:
        return f"{self.topic_prefix}.{suffix}"
