"""Identity benchmark: resolve throughput, quality on a large population, memory per profile.

``python -m bench.identity [persons]`` prints the figures as JSON; ``bench_identity`` returns
them for ``make bench``. It writes under ``<redis_prefix>bench:<run>:`` and removes it after.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from typing import Any

import redis

from apps.factory import pseudonyms
from identity.graph import IdentityGraph
from identity.quality import score
from identity.rules import IdentityRules, load_rules
from identity.synthetic import generate
from touchstream.settings import Settings

log = logging.getLogger(__name__)


def _stream(events_wanted: int, seed: int) -> list[dict[str, Any]]:
    persons = max(50, events_wanted // 25)
    while True:
        events, _ = generate(persons, seed)
        if len(events) >= events_wanted:
            return events[:events_wanted]
        persons = int(persons * 1.2) + 1


def _resolve(
    graph: IdentityGraph, events: Sequence[dict[str, Any]], batch_size: int
) -> tuple[list[str | None], float, dict[str, int]]:
    oneids: list[str | None] = []
    totals = {"merges": 0, "rejections": 0, "moves": 0}
    started = time.perf_counter()
    for i in range(0, len(events), batch_size):
        result = graph.resolve_batch(events[i : i + batch_size])
        oneids += result.oneids
        totals["merges"] += len(result.merges)
        totals["rejections"] += len(result.rejections)
        totals["moves"] += len(result.moves)
    return oneids, time.perf_counter() - started, totals


def _memory_usage(client: redis.Redis, keys: list[bytes]) -> list[int]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key, samples=0)
    return [int(n or 0) for n in pipe.execute()]


def measure_memory(client: redis.Redis, graph: IdentityGraph, sample: int = 1000) -> dict[str, float]:
    """Bytes per profile and per identifier from MEMORY USAGE: profile hashes on a sample,
    every index and alias bucket in full (their cost is shared by all profiles)."""
    profile_keys = list(client.scan_iter(match=graph.base + "p:*", count=1000))
    index_keys = list(client.scan_iter(match=graph.base + "i:*", count=1000))
    alias_keys = list(client.scan_iter(match=graph.base + "a:*", count=1000))
    if not profile_keys:
        return {}
    step = max(1, len(profile_keys) // sample)
    sampled = profile_keys[::step][:sample]
    sizes = _memory_usage(client, sampled)
    pipe = client.pipeline(transaction=False)
    for key in sampled:
        pipe.hkeys(key)
    members = [sum(1 for f in fields if not f.startswith(b"!")) for fields in pipe.execute()]
    index_bytes = sum(_memory_usage(client, index_keys))
    alias_bytes = sum(_memory_usage(client, alias_keys))
    pipe = client.pipeline(transaction=False)
    for key in index_keys:
        pipe.hlen(key)
    index_entries = sum(pipe.execute())
    profile_avg = sum(sizes) / len(sizes)
    ids_per_profile = sum(members) / len(members)
    per_profile = profile_avg + (index_bytes + alias_bytes) / len(profile_keys)
    return {
        "profiles": len(profile_keys),
        "identifiers": index_entries,
        "identifiers_per_profile": round(ids_per_profile, 2),
        "profile_hash_bytes_avg": round(profile_avg, 1),
        "index_bytes_per_identifier": round(index_bytes / max(1, index_entries), 1),
        "index_buckets_used": len(index_keys),
        "bytes_per_profile": round(per_profile, 1),
        "bytes_per_identifier": round(per_profile / max(ids_per_profile, 1e-9), 1),
    }


def bench_identity(
    persons: int = 20_000,
    *,
    batch_size: int = 500,
    stream_events: int = 50_000,
    seed: int = 7,
    settings: Settings | None = None,
    rules: IdentityRules | None = None,
) -> dict[str, Any]:
    """Throughput of resolve_batch (one process, ``batch_size`` events per call) on a fresh
    ``stream_events``-event synthetic stream; then precision/recall, throughput and memory on
    a ``persons``-people population. Needs the Redis of ``settings``."""
    settings = settings or Settings.from_env()
    rules = rules or load_rules()
    client = redis.Redis.from_url(settings.redis_url)
    base = f"{settings.redis_prefix}bench:{uuid.uuid4().hex[:8]}:"
    try:
        stream = _stream(stream_events, seed)
        graph = IdentityGraph(client, base + "stream:", rules, pseudonyms=pseudonyms(settings))
        _, seconds, _ = _resolve(graph, stream, batch_size)
        figures: dict[str, Any] = {
            "batch_size": batch_size,
            "stream_events": len(stream),
            "stream_events_per_s": round(len(stream) / seconds),
        }
        events, truth = generate(persons, seed)
        graph = IdentityGraph(client, base + "population:", rules, pseudonyms=pseudonyms(settings))
        oneids, seconds, totals = _resolve(graph, events, batch_size)
        final = graph.resolve_aliases({o for o in oneids if o})
        predicted = {e["message_id"]: final[o] if o else None for e, o in zip(events, oneids, strict=True)}
        report = score(predicted, truth)
        figures.update(
            {
                "persons": persons,
                "population_events": len(events),
                "population_events_per_s": round(len(events) / seconds),
                "precision": round(report.precision, 5),
                "recall": round(report.recall, 5),
                "f1": round(report.f1, 5),
                "split_persons": report.split_persons,
                "mixed_clusters": report.mixed_clusters,
                "unresolved_events": report.unresolved_events,
                **totals,
                **measure_memory(client, graph),
            }
        )
        return figures
    finally:
        _drop(client, base)
        client.close()


def _drop(client: redis.Redis, base: str) -> None:
    """Delete every key of the run (collected first, then removed in pipelined chunks)."""
    for _ in range(3):
        keys = list(client.scan_iter(match=base + "*", count=1000))
        if not keys:
            return
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i : i + 1000])


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    persons = int(args[0]) if args else 20_000
    print(json.dumps(bench_identity(persons), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
