"""``touchstream bench``: run every benchmark, print one table, write bench-results.json."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

from bench import collector, growth, lake_history, pipeline
from touchstream.settings import Settings


def run_all(settings: Settings, events: int, out: Path, log_dir: Path,
            growth_sizes: tuple[int, ...] = growth.SIZES,
            lake_sizes: tuple[int, ...] = lake_history.SIZES) -> dict[str, Any]:
    started = time.monotonic()
    results: dict[str, Any] = {}
    results.update(pipeline.run(settings, events, log_dir))
    if growth_sizes:
        results.update(growth.run(settings, log_dir, growth_sizes))
    results.update(collector.run(replace(settings, topic_prefix="bench-collector",
                                         redis_prefix="bench:collector:"), min(events, 200_000)))
    from bench.codec import bench_codec

    codec = bench_codec(50_000)
    results["codec_encode_per_s"] = round(codec["encode_per_s"])
    results["codec_decode_per_s"] = round(codec["decode_per_s"])
    from bench.identity import bench_identity

    quality = bench_identity(max(1000, min(20_000, events // 50)), settings=replace(
        settings, redis_prefix="bench:identity:"))
    results["identity"] = quality
    from bench.profiles import bench_segment_timers

    people = max(500, min(5000, events // 50))
    results["segment_timers"] = bench_segment_timers(redis.Redis.from_url(settings.redis_url),
                                                     "bench:segtimers:", people=people)
    from bench.profiles import bench_segment_timer_bytes

    results["segment_timer_bytes"] = bench_segment_timer_bytes(redis.Redis.from_url(settings.redis_url),
                                                               "bench:segbytes:", people=people)
    from bench.lake import bench_lake

    results["lake"] = bench_lake(settings, min(events, 100_000))  # quick: beside its own bare consumer
    for size, figures in lake_history.run(lake_sizes, log_dir, settings).items():  # cached synthetic lakes
        results[f"lake_history_{size}"] = figures
    for prefix in ("bench:collector:", "bench:identity:"):
        pipeline.forget(replace(settings, redis_prefix=prefix))
    results["bench_seconds"] = round(time.monotonic() - started, 1)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    render(results)
    return results


def render(results: dict[str, Any]) -> None:
    table = Table(title="Touchstream bench (one machine: 2 cores; Kafka, Redis, clients share them)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in results.items():
        if key == "growth":
            continue
        if isinstance(value, dict):
            for sub, inner in value.items():
                table.add_row(f"{key}.{sub}", _fmt(inner))
        else:
            table.add_row(key, _fmt(value))
    console = Console(width=None if sys.stdout.isatty() else 120)  # logs and CI are not 80 wide
    console.print(table)
    if results.get("growth"):
        console.print(growth_table(results["growth"]))


_GROWTH_LABELS = {
    "load_events_per_s": "load events/s",
    "events_per_s": "events/s",
    "us_per_event": "µs/event",
    "redis_bytes_per_profile": "bytes/profile (hashes)",
    "redis_used_memory_per_profile": "used_memory/profile",
    "aof_rewrites_during_slice": "AOF rewrites in slice",
}


def growth_table(rows: list[dict[str, Any]]) -> Table:
    """One row per population size: flat columns mean cost and memory do not grow with it."""
    table = Table(title="Growth: one worker, a fixed slice of returning-customer events per size")
    for column in rows[0]:
        table.add_column(_GROWTH_LABELS.get(column, column), justify="right", min_width=9)
    for row in rows:
        table.add_row(*(_fmt(v) for v in row.values()))
    return table


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 10 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
