"""Two worker processes resolving interleaved, conflicting batches against one Redis at once.

Each person's events are dealt out to both processes in alternating chunks, so both create,
link and merge the same profiles at the same time. The graph must come out consistent and
cluster exactly as one process resolving everything in time order does.

One kind of value is left out of the traffic: a value claimed by several people (the unlisted
shared email) belongs to whoever claims it first until the frequency guard trips, which is
order-dependent by design, not a race.
"""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections import defaultdict

import redis

from identity.graph import IdentityGraph
from identity.rules import load_rules
from identity.synthetic import UNLISTED_SHARED_EMAIL, generate
from tests.conftest import TEST_PSEUDONYMS

CHUNK = 50


def _worker(redis_url: str, prefix: str, chunks: list[list[dict]], barrier, results) -> None:
    client = redis.Redis.from_url(redis_url)
    graph = IdentityGraph(client, prefix, load_rules(), pseudonyms=TEST_PSEUDONYMS)
    graph.resolve_batch([])  # load nothing before the start line: both begin together
    barrier.wait(timeout=60)
    started = time.monotonic()
    out = []
    for chunk in chunks:
        result = graph.resolve_batch(chunk)
        out.append([(e["message_id"], o) for e, o in zip(chunk, result.oneids, strict=True)])
    results.put((started, time.monotonic(), out))
    client.close()


def traffic() -> list[dict]:
    events, _ = generate(200, seed=21)
    for event in events:
        event["identifiers"] = [i for i in event["identifiers"] if i["value"] != UNLISTED_SHARED_EMAIL]
    return events


def identifier_partition(graph: IdentityGraph, client: redis.Redis) -> set[frozenset[str]]:
    groups = set()
    for key in client.scan_iter(match=graph.base + "p:*", count=1000):
        members = frozenset(k.decode() for k in client.hkeys(key) if not k.startswith(b"!"))
        groups.add(members)
    return groups


def event_partition(pairs: list[tuple[str, str | None]], graph: IdentityGraph, keep: set[str]):
    final = graph.resolve_aliases({o for _, o in pairs if o})
    groups = defaultdict(set)
    for message_id, oneid in pairs:
        if message_id in keep and oneid:
            groups[final[oneid]].add(message_id)
    return {frozenset(g) for g in groups.values()}


def test_two_processes_at_once_build_the_graph_one_process_would(redis_client, settings):
    events = traffic()
    chunks = [events[i : i + CHUNK] for i in range(0, len(events), CHUNK)]
    run = uuid.uuid4().hex[:6]

    sequential = IdentityGraph(redis_client, f"{settings.redis_prefix}seq:{run}:", load_rules(),
                               pseudonyms=TEST_PSEUDONYMS)
    seq_pairs = []
    for chunk in chunks:
        result = sequential.resolve_batch(chunk)
        seq_pairs += [(e["message_id"], o) for e, o in zip(chunk, result.oneids, strict=True)]

    concurrent_prefix = f"{settings.redis_prefix}conc:{run}:"
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    workers = [
        ctx.Process(
            target=_worker, args=(settings.redis_url, concurrent_prefix, chunks[k::2], barrier, results)
        )
        for k in range(2)
    ]
    for worker in workers:
        worker.start()
    runs = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
        assert worker.exitcode == 0
    (start_a, end_a, out_a), (start_b, end_b, out_b) = runs
    assert start_a < end_b and start_b < end_a, "the two workers did not run at the same time"

    concurrent = IdentityGraph(redis_client, concurrent_prefix, load_rules(), pseudonyms=TEST_PSEUDONYMS)
    assert concurrent.check_consistency() == []  # one live OneID per identifier, one user_id per profile
    assert identifier_partition(concurrent, redis_client) == identifier_partition(sequential, redis_client)

    # Every event lands where one process puts it, except anonymous events on shared family
    # tablets: those follow whoever was logged in when they were resolved.
    users_per_device = defaultdict(set)
    for event in events:
        ids = {i["type"]: i["value"] for i in event["identifiers"]}
        if "device_id" in ids and "user_id" in ids:
            users_per_device[ids["device_id"]].add(ids["user_id"])
    tablets = {d for d, users in users_per_device.items() if len(users) > 1}
    assert tablets
    keep = {
        e["message_id"]
        for e in events
        if any(i["type"] == "user_id" for i in e["identifiers"])
        or not any(i["value"] in tablets for i in e["identifiers"])
    }
    conc_pairs = [pair for chunk in out_a + out_b for pair in chunk]
    assert event_partition(conc_pairs, concurrent, keep) == event_partition(seq_pairs, sequential, keep)
