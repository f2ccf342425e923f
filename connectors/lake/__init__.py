"""The event lake: every resolved event, merge, rejection, trigger and segment change in Hive-partitioned
Parquet.

Public API: :func:`run_lake_sink` (the blocking process), :class:`LakeConfig`, :func:`compact`,
:func:`snapshot_profiles`, and :func:`connect` / :func:`run_query` (DuckDB views over the lake).
The layout (``layout.py``) is plain Parquet under ``<table>/event_date=YYYY-MM-DD/`` so any engine
that reads Hive partitions reads the same lake.
"""

from __future__ import annotations

from connectors.lake.config import LakeConfig
from connectors.lake.exceptions import LakeError
from connectors.lake.sink import LakeSink, LakeStats, run_lake_sink

__all__ = ["LakeConfig", "LakeError", "LakeSink", "LakeStats", "run_lake_sink"]
