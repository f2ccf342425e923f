"""Benchmarks for ``make bench``: the rules engine alone, and the whole store on a real Redis.

Both use a synthetic but realistic mix (B2B site: page views across a few paths with a share
on /pricing and /features/*, identifies with firmographic traits, tracks, a few orders),
many events per person, and the default rules.
"""

from __future__ import annotations

import json
import random
import time
from typing import Any

from profiles.engine import Engine
from profiles.rules import Rules, RuleSet, load_rules_file
from profiles.state import ProfileState
from schemas.testing import event_record

_PATHS = [
    "/",
    "/pricing",
    "/features/segments",
    "/features/journeys",
    "/blog/rfm-guide",
    "/customers",
    "/docs/getting-started",
    "/about",
    "/pricing/enterprise",
    "/contact",
]
_TRACKS = [
    "Email Link Clicked",
    "Whitepaper Downloaded",
    "Webinar Registered",
    "Heartbeat",
    "Page Left",
    "Demo Requested",
    "Coupon Applied",
    "Order Completed",
    "Trial Started",
    "Button Clicked",
]
T0 = 1_700_000_000_000


def synthetic_events(n: int, people: int, *, seed: int = 7, start_ms: int = T0) -> list[dict[str, Any]]:
    """``n`` contract-shaped resolved events for ``people`` OneIDs, in time order."""
    rng = random.Random(seed)
    events = []
    ts = start_ms
    for i in range(n):
        ts += rng.randint(1, 400)
        person = rng.randrange(people)
        roll = rng.random()
        ev = event_record("page", ts, message_id=f"bench-{seed}-{i}", source="bench",
                          anonymous_id=f"anon-{person}", original_timestamp=ts, sent_at=ts,
                          identifiers=[{"type": "anonymous_id", "value": f"anon-{person}"}],
                          oneid=f"p{person}")
        if roll < 0.65:
            path = rng.choice(_PATHS)
            ev["properties"] = json.dumps(
                {
                    "path": path,
                    "url": f"https://example.com{path}",
                    "title": "T",
                    "referrer": "https://www.baidu.com/",
                }
            )
        elif roll < 0.70:
            ev["type"] = "identify"
            ev["traits"] = json.dumps(
                {
                    "email": f"user{person}@example.com",
                    "employees": rng.choice([20, 150, 800]),
                    "industry": rng.choice(["software", "retail"]),
                    "title": "Manager",
                    "marketing_consent": rng.random() < 0.7,
                }
            )
        else:
            ev["type"] = "track"
            ev["event"] = rng.choice(_TRACKS)
            props: dict[str, Any] = {}
            if ev["event"] == "Order Completed":
                props = {"order_id": f"o-{i}", "revenue": round(rng.uniform(50, 30000), 2), "currency": "CNY"}
            ev["properties"] = json.dumps(props)
        events.append(ev)
    return events


def bench_rules(
    n: int, *, rules: Rules | None = None, batch: int = 500, people: int | None = None
) -> dict[str, Any]:
    """µs per event for the rules engine alone (no Redis): index, CEL, aggregates, dwell, triggers.

    Profiles persist across batches in memory, as they would in Redis.
    """
    rules = rules or load_rules_file(RuleSet().path)
    people = people or max(1, n // 25)
    events = synthetic_events(n, people)
    states: dict[str, ProfileState] = {}
    candidates = 0
    fired = 0
    start = time.perf_counter()
    for lo in range(0, n, batch):
        engine = Engine(rules, T0)
        chunk = events[lo : lo + batch]
        for offset, ev in enumerate(chunk, start=lo):
            st = states.get(ev["oneid"])
            if st is None:
                st = states[ev["oneid"]] = ProfileState(ev["oneid"])
            cands = rules.candidates(ev["type"], ev["event"] if ev["type"] == "track" else ev["name"])
            candidates += cands.count
            engine.on_event(st, 0, offset, ev)
        for st in states.values():
            engine.finish_profile(st)
            st.groups.clear()
        fired += len(engine.pending)
    elapsed = time.perf_counter() - start
    return {
        "events": n,
        "people": people,
        "rules": rules.rule_count,
        "seconds": round(elapsed, 3),
        "us_per_event": round(elapsed / n * 1e6, 2),
        "events_per_s": round(n / elapsed),
        "rules_considered_per_event": round(candidates / n, 2),
        "triggers": fired,
    }


def bench_store(
    redis_client: Any,
    prefix: str,
    n: int,
    *,
    batch: int = 500,
    people: int | None = None,
    rules: Rules | None = None,
) -> dict[str, Any]:
    """Events per second through :class:`ProfileStore.apply_batch` on a real Redis (2 script calls
    per batch), the same batches replayed (all skipped), and the mean MEMORY USAGE per profile."""
    from profiles.store import ProfileStore

    rules = rules or load_rules_file(RuleSet().path)
    people = people or max(1, n // 25)
    store = ProfileStore(redis_client, prefix, rules)
    events = synthetic_events(n, people)
    batches = [
        [(off, ev) for off, ev in enumerate(events[lo : lo + batch], start=lo)] for lo in range(0, n, batch)
    ]
    triggers = 0
    start = time.perf_counter()
    for chunk in batches:
        triggers += len(store.apply_batch(0, chunk, T0).triggers)
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    replayed = sum(store.apply_batch(0, chunk, T0).skipped_replayed for chunk in batches)
    replay_elapsed = time.perf_counter() - start
    sample = [f"p{i}" for i in range(min(people, 200))]
    sizes = [sum(store.memory_usage(oneid).values()) for oneid in sample]
    return {
        "events": n,
        "people": people,
        "batch": batch,
        "seconds": round(elapsed, 3),
        "events_per_s": round(n / elapsed),
        "us_per_event": round(elapsed / n * 1e6, 2),
        "replay_events_per_s": round(n / replay_elapsed),
        "replayed_skipped": replayed,
        "triggers": triggers,
        "bytes_per_profile_mean": round(sum(sizes) / len(sizes)),
        "bytes_per_profile_max": max(sizes),
        "events_per_profile": round(n / people, 1),
    }
