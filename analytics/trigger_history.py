"""Triggers over time by rule: how often each rule fired, per UTC day (or week).

Counted from the lake's ``triggers`` table by idempotency key: a crash between Kafka's ack and
the outbox's clean-up can put one trigger on the topic twice with the same key, and it was
delivered once. Every bucket between the first and the last is present (a quiet day is a zero,
not a gap in a chart).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from analytics.exceptions import AnalyticsError
from profiles.durations import DAY_MS, WEEK_MS

BUCKETS = {"day": DAY_MS, "week": WEEK_MS}
_MONDAY_SHIFT_MS = 3 * DAY_MS  # weeks start on Monday (1970-01-01 was a Thursday)


@dataclass(frozen=True)
class TriggerSeries:
    bucket: str
    starts: tuple[str, ...]  # each bucket's first day, ISO
    counts: dict[str, tuple[int, ...]]  # rule -> triggers per bucket, rules by total (most first)

    def totals(self) -> dict[str, int]:
        return {rule: sum(values) for rule, values in self.counts.items()}

    def table(self) -> pa.Table:
        rows = [{"start": start, "rule": rule, "triggers": values[i]}
                for rule, values in self.counts.items() for i, start in enumerate(self.starts)]
        schema = pa.schema([("start", pa.string()), ("rule", pa.string()), ("triggers", pa.int64())])
        return pa.Table.from_pylist(rows, schema=schema)


def triggers_over_time(con: duckdb.DuckDBPyConnection, *, bucket: str = "day", since_ms: int | None = None,
                       until_ms: int | None = None) -> TriggerSeries:
    """Triggers fired per rule and ``bucket`` (``day`` or ``week``, UTC) between the bounds."""
    if bucket not in BUCKETS:
        raise AnalyticsError(f"bucket: one of {', '.join(BUCKETS)}, not {bucket!r}")
    size = BUCKETS[bucket]
    shift = _MONDAY_SHIFT_MS if bucket == "week" else 0
    sql = f"""
        SELECT rule, (fired_at + {shift}) // {size} AS b, count(DISTINCT idempotency_key)
        FROM triggers
        WHERE ($since IS NULL OR fired_at >= $since) AND ($until IS NULL OR fired_at <= $until)
        GROUP BY ALL"""  # noqa: S608 (numbers only)
    try:
        rows = con.execute(sql, {"since": since_ms, "until": until_ms}).fetchall()
    except duckdb.Error as exc:
        raise AnalyticsError(f"triggers query failed: {exc}") from None
    if not rows:
        return TriggerSeries(bucket, (), {})
    first, last = min(int(r[1]) for r in rows), max(int(r[1]) for r in rows)
    by_rule: dict[str, list[int]] = {}
    for rule, b, n in rows:
        by_rule.setdefault(rule, [0] * (last - first + 1))[int(b) - first] = int(n)
    starts = tuple(datetime.fromtimestamp((b * size - shift) / 1000, UTC).date().isoformat()
                   for b in range(first, last + 1))
    ordered = sorted(by_rule, key=lambda rule: (-sum(by_rule[rule]), rule))
    return TriggerSeries(bucket, starts, {rule: tuple(by_rule[rule]) for rule in ordered})
