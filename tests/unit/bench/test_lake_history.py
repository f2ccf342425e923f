"""The big-lake bench's synthetic history is a lake the views read as a real one."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from bench import lake_history
from connectors.lake import layout
from connectors.lake.query import connect
from connectors.lake.rows import TABLES, arrow_schema
from schemas.codec import default_registry


def test_the_synthetic_lake_has_the_sinks_layout_schema_and_merges(tmp_path: Path) -> None:
    path, _ = lake_history.build(3000, tmp_path)
    registry = default_registry()
    for spec in TABLES[:2]:  # events and merges
        found = layout.table_files(path, spec.name)
        assert found and layout.live(found) == found
        for file, _span in found:
            assert pq.read_schema(file).remove_metadata() == arrow_schema(registry, spec.schema)
        ends: dict[int, int] = {}
        for _, span in sorted(found, key=lambda f: (f[1].partition, f[1].first)):
            assert span.first == ends.get(span.partition, 0)  # contiguous offsets per partition
            ends[span.partition] = span.last + 1
    con = connect(path)
    assert con.execute("SELECT count(*), count(DISTINCT message_id) FROM events").fetchone() == (3000, 3000)
    orders = con.execute("SELECT count(*) FROM events WHERE event = 'Order Completed' "
                         "AND json_extract(properties, '$.revenue') IS NOT NULL").fetchone()
    assert orders is not None and orders[0] > 0
    anonymous = con.execute(
        "SELECT count(*) FROM events e JOIN identities i ON e.oneid = i.oneid "
        "WHERE e.oneid LIKE '%-anon' AND i.survivor = replace(e.oneid, '-anon', '')").fetchone()
    assert anonymous is not None and anonymous[0] > 0  # history follows the merges
    assert lake_history.build(3000, tmp_path) == (path, 0.0)  # cached


def test_every_timed_question_answers_over_it(tmp_path: Path) -> None:
    path, _ = lake_history.build(1000, tmp_path)
    for timed in lake_history.TIMED:
        con = connect(path)
        assert timed.run(con, path) is not None, timed.name
