"""A lake per test, written from event rows."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from connectors.lake.query import connect
from tests.unit.analytics.lakes import merge, write_lake

Lake = Callable[..., duckdb.DuckDBPyConnection]


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    """``lake(events, merges=[(survivor, merged, at)])``: a DuckDB connection over them."""
    def build(events: list[dict[str, Any]],
              merges: list[tuple[str, str, int]] = ()) -> duckdb.DuckDBPyConnection:
        write_lake(tmp_path, events, [merge(s, m, at) for s, m, at in merges])
        return connect(tmp_path)
    return build
