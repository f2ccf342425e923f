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

from analytics.history import aggregates
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


def _partition(guard: str) -> int:
    return int(guard.split(":", 1)[0])


def _guard_rows(survivor: str, guards: dict[str, int]) -> list[tuple[str, str, int, int]]:
    """(survivor, stamped OneID, partition, offset applied) per guard (``engine.on_event``)."""
    out = []
    for guard, offset in guards.items():
        part, _, alias = guard.partition(":")
        out.append((survivor, alias or survivor, int(part), offset))
    return out


def _batches(items: Sequence[str], size: int) -> list[Sequence[str]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def backfill_aggregate(con: duckdb.DuckDBPyConnection, rules: Rules, name: str, target: SeedTarget, *,
                       skew_ms: int = 300_000, batch: int = 1000, attempts: int = 3) -> BackfillReport:
    """Replace aggregate ``name``'s buckets in every live profile with history's (module doc)."""
    history = History(con, rules, skew_ms=skew_ms, aggregate_names=(name,), with_tags=False,
                      with_score=False)
    plan = history.plans[name]
    report = BackfillReport(f"aggregates.{name}")
    ends = lake_ends(con)
    pending = [s for (s,) in con.execute(f"SELECT DISTINCT survivor FROM {plan.table} ORDER BY 1").fetchall()]
    report.profiles = len(pending)
    for _ in range(attempts):
        read: dict[str, Guards] = {}
        for chunk in _batches(pending, batch):
            for oneid, found in zip(chunk, target.guards(chunk), strict=True):
                if found is None:
                    report.outcomes["missing"] += 1
                elif any(offset > ends.get(_partition(g), -1) for g, offset in found[0].items()):
                    report.outcomes["behind"] += 1
                else:
                    read[oneid] = found
        payloads = _aggregate_payloads(con, rules, plan, read)
        changed = []
        for chunk in _batches(list(payloads), batch):
            for oneid, outcome in zip(chunk, target.seed([payloads[o] for o in chunk]), strict=True):
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


def _aggregate_payloads(con: duckdb.DuckDBPyConnection, rules: Rules, plan: aggregates.Plan,
                        read: dict[str, Guards]) -> dict[str, dict[str, Any]]:
    """Per profile, the seed of its buckets from the events its guards say it applied."""
    rows = [row for survivor, (guards, _) in read.items() for row in _guard_rows(survivor, guards)]
    applied = pa.table({"survivor": pa.array([r[0] for r in rows], pa.string()),
                        "oneid": pa.array([r[1] for r in rows], pa.string()),
                        "p": pa.array([r[2] for r in rows], pa.int32()),
                        "applied": pa.array([r[3] for r in rows], pa.int64())})
    con.register("h_applied", applied)
    keep = ("EXISTS (SELECT 1 FROM h_applied g WHERE g.survivor = c.survivor AND g.oneid = c.oneid "
            "AND g.p = c.p AND c.o <= g.applied)")
    found = aggregates.buckets(con, plan, keep)
    con.unregister("h_applied")
    rule = plan.rule
    prefix = f"{layout.BUCKET}{rule.sid}:"
    sets: dict[str, dict[str, str]] = defaultdict(dict)
    lateness = rules.options.allowed_lateness_ms
    for survivor, idx, value in zip(*(found.column(i).to_pylist() for i in range(3)), strict=True):
        last_seen = read[survivor][1]
        oldest = agg.keep_from(last_seen, lateness, rule.window_ms, rule.bucket_ms) if last_seen else None
        if oldest is None or idx >= oldest:  # older ones the stream has pruned: not read again
            sets[survivor][f"{prefix}{idx}"] = aggregates.encode_bucket(plan, value)
    return {survivor: {"id": survivor, "guards": {layout.OFFSET + g: o for g, o in guards.items()},
                       "prefix": prefix, "set": sets.get(survivor, {})}
            for survivor, (guards, _) in read.items()}


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
