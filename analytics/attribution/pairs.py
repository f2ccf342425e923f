"""Each counted conversion with the touches it credits, numbered: what every model reads.

``_a_pairs`` (temporary): conv, revenue, key, ts, pos (1..n in time order, ties by source and
messageId), n (touches of the conversion; 0 for a conversion with none, which has one row with
key NULL), last_ts (its latest touch).
"""

from __future__ import annotations

import duckdb

from analytics.attribution.options import AttributionOptions
from analytics.touches import CONVERSIONS, TOUCHES

PAIRS = "_a_pairs"


def build_pairs(con: duckdb.DuckDBPyConnection, options: AttributionOptions) -> None:
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {PAIRS} AS
        SELECT c.conv, c.revenue, {options.key_sql('t')} AS key, t.ts,
               CASE WHEN t.ts IS NULL THEN 0 ELSE row_number() OVER touches END AS pos,
               count(t.ts) OVER (PARTITION BY c.conv) AS n,
               max(t.ts) OVER (PARTITION BY c.conv) AS last_ts
        FROM {CONVERSIONS} c
        LEFT JOIN {TOUCHES} t
          ON t.person = c.person AND t.ts <= c.ts AND t.ts >= c.ts - {int(options.lookback_ms)}
        WHERE c.counted
        WINDOW touches AS (PARTITION BY c.conv ORDER BY t.ts, t.source, t.message_id)
    """)  # noqa: S608 - the module's own table names and whole numbers
