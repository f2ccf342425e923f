"""What the lake sink and the query side need, built from Settings by ``apps/factory.py``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from connectors.lake import layout
from connectors.lake.exceptions import LakeError
from connectors.lake.location import local_folder, shown


@dataclass(frozen=True)
class LakeConfig:
    """The lake's folder or URL, the sink's spool, how files roll, and where the sink reads from."""

    path: Path | str  # a folder, or a URL pyarrow's filesystems open (location.py)
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
    spool_path: Path | None = None  # the sink's local spool; None: <lake>/_spool (a folder only)

    def topic(self, suffix: str) -> str:
        return f"{self.topic_prefix}.{suffix}"

    def spool_root(self) -> Path:
        """Where the sink's segments and roll manifests wait: a local folder, always."""
        if self.spool_path is not None:
            return Path(self.spool_path)
        folder = local_folder(self.path)
        if folder is None:
            raise LakeError(f"the lake {shown(self.path)} is not a local folder: its sink needs a local "
                            "spool folder (TOUCHSTREAM_LAKE_SPOOL_PATH)")
        return folder / layout.SPOOL
