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


def bench_segment_timers(redis_client: Any, prefix: str, *, people: int = 20_000, per_person: int = 5,
                         batch: int = 500, rounds: int = 3) -> dict[str, Any]:
    """What the segment timer costs (``profiles/segments/timing.py``), under the default rules
    (``hot_leads`` reads a decaying score and tags: timed, so its members keep a timer).

    - events: µs per event through ``apply_batch`` with the timers on and off (the same rules
      with ``timed_segments`` emptied: the code before timers), alternating, fresh profiles each
      run, best of ``rounds``; wall time and this process's CPU time (the machine is shared:
      CPU time is the steadier figure; the Lua side is in the wall time only);
    - tick: µs per profile whose timer the sweep (``close_expired``) evaluates;
    - Redis bytes per timer, and the share of one core a million profiles cost at the default
      re-check interval (each is evaluated once per interval).
    """
    from profiles.store import ProfileStore

    def run(on: bool, tag: str) -> tuple[float, float, ProfileStore, str]:
        rules = load_rules_file(RuleSet().path)
        if not on:
            rules.__dict__["timed_segments"] = {}  # the cached property, emptied: no timers
        own = f"{prefix}{tag}:"
        store = ProfileStore(redis_client, own, rules)
        events = synthetic_events(people * per_person, people, seed=11)
        wall, cpu = time.perf_counter(), time.process_time()
        for lo in range(0, len(events), batch):
            store.apply_batch(0, list(enumerate(events[lo:lo + batch], start=lo)), T0)
        n = len(events)
        return (time.perf_counter() - wall) / n * 1e6, (time.process_time() - cpu) / n * 1e6, store, own

    def forget(own: str) -> None:
        keys = list(redis_client.scan_iter(match=f"{own}*", count=5000))
        for lo in range(0, len(keys), 5000):
            redis_client.unlink(*keys[lo:lo + 5000])

    walls: dict[bool, list[float]] = {True: [], False: []}
    cpus: dict[bool, list[float]] = {True: [], False: []}
    ticks: list[tuple[float, float]] = []
    timers, timer_bytes = 0, 0.0
    for r in range(rounds):
        for on in (False, True) if r % 2 == 0 else (True, False):
            wall_us, cpu_us, store, own = run(on, f"{r}{int(on)}")
            walls[on].append(wall_us)
            cpus[on].append(cpu_us)
            if on:
                timers = sum(1 for _ in redis_client.zscan_iter(f"{own}pdue:0", match="s|*"))
                every = int(redis_client.zcard(f"{own}pdue:0"))  # beside the triggers' own timers
                timer_bytes = (redis_client.memory_usage(f"{own}pdue:0", samples=0) or 0) / max(1, every)
                evaluated, wall, cpu = 0, time.perf_counter(), time.process_time()
                while True:  # every timer is due within the re-check interval: sweep them all
                    result = store.close_expired_result(T0 + 2 * 3_600_000, [0])
                    if not result.profiles:
                        break
                    evaluated += result.profiles
                ticks.append(((time.perf_counter() - wall) / max(1, evaluated) * 1e6,
                              (time.process_time() - cpu) / max(1, evaluated) * 1e6))
            forget(own)
    tick_wall, tick_cpu = min(t[0] for t in ticks), min(t[1] for t in ticks)
    recheck_s = load_rules_file(RuleSet().path).options.segment_recheck_ms / 1000
    return {
        "people": people,
        "events": people * per_person,
        "us_per_event_timers_off": round(min(walls[False]), 1),
        "us_per_event_timers_on": round(min(walls[True]), 1),
        "cpu_us_per_event_timers_off": round(min(cpus[False]), 1),
        "cpu_us_per_event_timers_on": round(min(cpus[True]), 1),
        "event_cpu_overhead_pct": round((min(cpus[True]) - min(cpus[False])) / min(cpus[False]) * 100, 1),
        "timers": timers,
        "redis_bytes_per_timer": round(timer_bytes),
        "tick_us_per_profile": round(tick_wall, 1),
        "tick_cpu_us_per_profile": round(tick_cpu, 1),
        "core_share_per_million_profiles": round(1e6 / recheck_s * tick_wall / 1e6, 3),
    }


def bench_segment_timer_bytes(redis_client: Any, prefix: str, *, people: int = 5000, per_person: int = 5,
                              batch: int = 500) -> dict[str, Any]:
    """Segment timers and Redis bytes per profile under the default rules with and without the
    monotonicity analysis (``profiles/rules/monotone.py``: a non-member gets a timer only for a
    segment time alone can bring it into); both in the same run, over the same events."""
    from profiles.store import ProfileStore

    events = synthetic_events(people * per_person, people, seed=11)
    out: dict[str, Any] = {"people": people, "events": len(events)}
    for analysed in (False, True):
        rules = load_rules_file(RuleSet().path)
        if not analysed:  # the code before: every timed segment times its non-members too
            for name in ("segments_entered_by_time", "segments_entered_by_time_if_sums_fall"):
                rules.__dict__[name] = frozenset(rules.timed_segments)
        own = f"{prefix}{int(analysed)}:"
        store = ProfileStore(redis_client, own, rules)
        for lo in range(0, len(events), batch):
            store.apply_batch(0, list(enumerate(events[lo:lo + batch], start=lo)), T0)
        keys = list(redis_client.scan_iter(match=f"{own}*", count=5000))
        name = "analysed" if analysed else "every_profile"
        out[f"{name}_segment_timers"] = sum(1 for _ in redis_client.zscan_iter(f"{own}pdue:0", match="s|*"))
        out[f"{name}_redis_bytes_per_profile"] = round(
            sum(redis_client.memory_usage(k, samples=0) or 0 for k in keys) / people)
        out[f"{name}_due_set_bytes"] = redis_client.memory_usage(f"{own}pdue:0", samples=0) or 0
        for lo in range(0, len(keys), 5000):
            redis_client.unlink(*keys[lo:lo + 5000])
    return out
