"""A lake per test: written from event rows (``make_lake``) or by a :class:`LakeWriter` (``open_lake``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest

from connectors.lake.query import connect
from tests.unit.analytics.lakegen import LakeWriter
from tests.unit.analytics.lakes import merge, write_lake

Lake = Callable[..., duckdb.DuckDBPyConnection]


@pytest.fixture
def make_lake(tmp_path: Path) -> Lake:
    """``make_lake(events, merges=[(survivor, merged, at) or a merges record])``: a DuckDB
    connection over them."""
    def build(events: list[dict[str, Any]],
              merges: Sequence[tuple[str, str, int] | dict[str, Any]] = ()) -> duckdb.DuckDBPyConnection:
        write_lake(tmp_path, events, [m if isinstance(m, dict) else merge(*m) for m in merges])
        return connect(tmp_path)
    return build


@pytest.fixture
def open_lake(tmp_path: Path) -> Callable[[LakeWriter], duckdb.DuckDBPyConnection]:
    def opened(lake: LakeWriter) -> duckdb.DuckDBPyConnection:
        return connect(lake.write(tmp_path / "lake"))
    return opened
