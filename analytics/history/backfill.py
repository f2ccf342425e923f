"""`touchstream backfill`: a rule added today is right on day one, for people who arrived before it.

**Aggregates: per profile, history up to what the profile has applied, then the stream.** A
profile's offset guards (``o:<partition>``, ``o:<partition>:<alias>``, ``profiles/state.py``)
say exactly which events of the resolved topic it has processed: those at or below them. The
backfill computes the new aggregate's buckets from the lake's copy of *those* events and
replaces the aggregate's buckets with them; the events above them, not yet applied, are the
stream's to count when they come (the rule is in force by then). So nothing is counted twice,
whether the stream applied an event before the rule existed (the stream never counted it;
history does) or after (both would: history's value replaces the stream's). Two conditions keep
it exact, and a profile failing one is left alone and reported:

* *behind*: the lake must hold every event the profile applied (each guard at or below the
  lake's last offset of that partition); run again once the lake sink has caught up;
* *changed*: the Lua ``seed`` command replaces the buckets only if the profile's guards are
  still exactly those read (compare-and-set); a profile the stream moved meanwhile is read and
  computed again (``attempts`` times).

Running it twice changes nothing (the second run writes the same buckets: ``same``).

**Tags: extended, never reduced.** A tag's expiry is a maximum (``OP_TAG``), so the expiry
history finds is merged into the live one with the same maximum; events applied or not make no
difference, and a second run changes nothing. Only tags still active now are written.

Profiles the stream does not have (erased, collected, merged away) are never created (``missing``).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from analytics.history import aggregates
from analytics.history.expressions import on_sql
from analytics.history.state import History
from connectors.lake.query import RAW_EVENTS
from profiles import aggregates as agg
from profiles import layout
from profiles.rules.model import Rules

log = logging.getLogger(__name__)

Guards = tuple[dict[str, int], int | None]  # offset guards, last seen


class SeedTarget(Protocol):
    """What backfill writes through (``profiles.store.ProfileStore``)."""

    def guards(self, oneids: Sequence[str]) -> list[Guards | None]: ...

    def seed(self, payloads: Sequence[dict[str, Any]]) -> list[str]: ...


@dataclass
class BackfillReport:
    rule: str
    profiles: int = 0  # people with history for the rule
    outcomes: Counter[str] = field(default_factory=Counter)  # seeded, same, missing, behind, changed

    @property
    def complete(self) -> bool:
        """Every profile seeded or already right (missing ones have nothing to seed)."""
        return not (self.outcomes["behind"] or self.outcomes["changed"])

    def render(self) -> str:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(self.outcomes.items())) or "nothing to do"
        line = f"backfill {self.rule}: {self.profiles} profile(s) with history: {counts}"
        if self.outcomes["behind"]:
            line += " (behind: the lake does not hold every event those profiles applied yet; run again)"
        return line + "\n"


def lake_ends(con: duckdb.DuckDBPyConnection) -> dict[int, int]:
    """Per partition of the resolved topic, the last offset the lake holds."""
    rows = con.execute(f"SELECT _partition, max(_offset) FROM {RAW_EVENTS} GROUP BY 1").fetchall()
    return {int(p): int(o) for p, o in rows}


def _behind(guards: dict[str, int], ends: dict[int, int]) -> bool:
    """Whether the profile applied an event past the lake's end of its partition."""
    return any(offset > ends.get(int(guard.split(":", 1)[0]), -1) for guard, offset in guards.items())


def _batches(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def backfill_aggregate(con: duckdb.DuckDBPyConnection, rules: Rules, name: str, target: SeedTarget, *,
                       skew_ms: int = 300_000, batch: int = 1000, attempts: int = 3) -> BackfillReport:
    """Replace aggregate ``name``'s buckets in every live profile with history's (module doc)."""
    history = History(con, rules, skew_ms=skew_ms, aggregate_names=(name,), with_tags=False,
                      with_score=False, only=on_sql(rules.aggregates[name].on))
    history.prepare((name,))
    plan = history.plans[name]
    report = BackfillReport(f"aggregates.{name}")
    ends = lake_ends(con)
    pending = [s for (s,) in con.execute(f"SELECT DISTINCT survivor FROM {plan.table} ORDER BY 1").fetchall()]
    report.profiles = len(pending)
    for _ in range(attempts):
        read: dict[str, Guards] = {}
        missing = behind = 0
        for chunk in _batches(pending, batch):
            for oneid, found in zip(chunk, target.guards(chunk), strict=True):
                if found is None:
                    missing += 1
                elif _behind(found[0], ends):
                    behind += 1
                else:
                    read[oneid] = found
        report.outcomes.update({k: n for k, n in (("missing", missing), ("behind", behind)) if n})
        sets = _applied_buckets(con, rules, plan, read)
        prefix, mark = f"{layout.BUCKET}{plan.rule.sid}:", layout.OFFSET
        changed = []
        for chunk in _batches(list(read), batch):  # each batch's payloads made as it is sent
            payloads = [{"id": o, "guards": {mark + g: n for g, n in read[o][0].items()}, "prefix": prefix,
                         "set": sets.get(o) or {}} for o in chunk]
            for oneid, outcome in zip(chunk, target.seed(payloads), strict=True):
                if outcome == "changed":
                    changed.append(oneid)
                else:
                    report.outcomes[outcome] += 1
        if not changed:
            break
        pending = changed
    else:
        report.outcomes["changed"] += len(changed)
    return report


def _applied_buckets(con: duckdb.DuckDBPyConnection, rules: Rules, plan: aggregates.Plan,
                     read: dict[str, Guards]) -> dict[str, dict[str, str]]:
    """Per profile, the buckets to seed (field -> stored text) from the events its guards say it
    applied (buckets older than the stream still reads after the profile's last event are left
    out: it pruned them); a profile without one is absent."""
    rule = plan.rule
    lateness = rules.options.allowed_lateness_ms
    survivors, oneids, parts, offsets, olds = [], [], [], [], []
    for survivor, (guards, last_seen) in read.items():
        oldest = agg.keep_from(last_seen, lateness, rule.window_ms, rule.bucket_ms) if last_seen else None
        for guard, offset in guards.items():  # <partition>[:<stamped OneID>] (``engine.on_event``)
            part, _, alias = guard.partition(":")
            survivors.append(survivor)
            oneids.append(alias or survivor)
            parts.append(int(part))
            offsets.append(offset)
            olds.append(oldest)
    con.register("h_applied", pa.table({
        "survivor": pa.array(survivors, pa.string()), "oneid": pa.array(oneids, pa.string()),
        "p": pa.array(parts, pa.int32()), "applied": pa.array(offsets, pa.int64()),
        "oldest": pa.array(olds, pa.int64())}))
    found = aggregates.applied_buckets(con, plan, "h_applied")
    con.unregister("h_applied")
    prefix = f"{layout.BUCKET}{rule.sid}:"
    keys = pc.binary_join_element_wise(prefix, pc.cast(found.column("idx"), pa.string()), "").to_pylist()
    if rule.op == "count":  # str() of an integer, in Arrow
        texts = pc.cast(found.column("value"), pa.string()).to_pylist()
    else:
        texts = [aggregates.encode_bucket(plan, v) for v in found.column("value").to_pylist()]
    sets: dict[str, dict[str, str]] = defaultdict(dict)
    for survivor, key, text in zip(found.column("survivor").to_pylist(), keys, texts, strict=True):
        sets[survivor][key] = text
    return sets


def backfill_tag(con: duckdb.DuckDBPyConnection, rules: Rules, name: str, target: SeedTarget, *, now_ms: int,
                 skew_ms: int = 300_000, batch: int = 1000) -> BackfillReport:
    """Extend tag rule ``name``'s tags in every live profile to what history says (module doc)."""
    history = History(con, rules, skew_ms=skew_ms, aggregate_names=(), with_tags=True, with_score=False,
                      tag_rules=(name,))
    report = BackfillReport(f"tags.{name}")
    unchecked = history.unchecked.get(f"tags.{name}")
    if unchecked is not None:
        raise ValueError(f"tags.{name} cannot be computed from history: {unchecked}")
    expiries: dict[str, dict[str, int]] = defaultdict(dict)
    for survivor, tag, expiry in history.tag_expiries(now_ms):
        if expiry == 0 or expiry > now_ms:
            expiries[survivor][tag] = expiry
    report.profiles = len(expiries)
    people = sorted(expiries)
    for chunk in _batches(people, batch):
        outcomes = target.seed([{"id": oneid, "tags": expiries[oneid]} for oneid in chunk])
        report.outcomes.update(outcomes)
    return report
