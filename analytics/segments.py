"""Segments from the outside: list, count and export members, and refresh the SQL segments.

Membership itself lives in Redis (``profiles/segments/``), so counting is one ZCARD and an export
reads the members' profiles in chunks. An **SQL segment** is evaluated here: its query runs on the
lake's DuckDB views, each OneID it returns is mapped to its survivor (the ``identities`` view, so
history follows merges), and the answer is diffed with the stored members. The changes are made by
the profile script in chunks, each only where membership still differs, and each chunk's records
are produced and cleared from the outbox before the next: a refresh cut short (a crash, SIGKILL)
leaves at most one chunk's records in the outbox, which the next refresh sends first, and the
next refresh's diff finishes the rest. So a second refresh over the same lake records nothing.

Only one refresh runs at a time (a lock in Redis that expires, so a killed refresh frees it). A
lake with no events refuses the refresh: an empty answer would empty every SQL segment.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import duckdb
import pyarrow as pa
from redis.exceptions import LockError

from connectors.lake.exceptions import LakeError
from connectors.lake.query import run_query
from profiles.rules.model import Rules, SegmentRule
from profiles.store import ProfileStore

log = logging.getLogger(__name__)



class Publisher(Protocol):
    """Where a refresh's records go (``streams.publish.SegmentPublisher``)."""

    def send(self, changes: Sequence[dict[str, Any]]) -> None:
        """Produce them and clear them from the segments outbox once Kafka acknowledged them."""
        ...

    def leftovers(self) -> list[dict[str, Any]]:
        """Records an earlier, cut-short refresh left in the outbox."""
        ...


CHUNK = 1000
LOCK_S = 120.0  # a refresh holds its lock this long after its last chunk (a killed one frees it)

EXPORT_SCHEMA = pa.schema([
    pa.field("oneid", pa.string()),
    pa.field("member_since", pa.int64()),
    pa.field("first_seen", pa.int64()),
    pa.field("last_seen", pa.int64()),
    pa.field("last_interaction", pa.int64()),
    pa.field("score", pa.float64()),
    pa.field("tier", pa.string()),
    pa.field("tags", pa.string()),  # JSON text, as in the lake's profiles snapshot
    pa.field("consent", pa.string()),  # JSON: purpose -> allowed
    pa.field("aggregates", pa.string()),
    pa.field("traits", pa.string()),
])


class SegmentError(LakeError):
    """A segment that cannot be counted, exported or refreshed (unknown, wrong kind, bad query)."""


@dataclass(frozen=True)
class SegmentInfo:
    """One row of ``touchstream segment list``."""

    name: str
    kind: str  # stream, sql, or "removed" (members in Redis, no longer in the rules)
    members: int
    version: int  # entries and exits recorded so far
    description: str = ""


@dataclass
class RefreshOutcome:
    """What one refresh of one SQL segment did."""

    segment: str
    members: int = 0
    entered: int = 0
    exited: int = 0
    resent: int = 0  # records a cut-short refresh had left in the outbox
    records: list[dict[str, Any]] = field(default_factory=list)

    def render(self) -> str:
        resent = f", {self.resent} left by an earlier refresh sent" if self.resent else ""
        return (f"{self.segment}: {self.members} member(s), {self.entered} entered, {self.exited} exited"
                f"{resent}")


def list_segments(store: ProfileStore, rules: Rules) -> list[SegmentInfo]:
    """Every segment of the rules, then any that still has members in Redis but left the rules."""
    versions = store.segment_versions()
    out = [SegmentInfo(s.name, s.kind, store.segment_count(s.name), versions.get(s.name, 0), s.description)
           for s in rules.segments.values()]
    for name in sorted(set(versions) - set(rules.segments)):
        members = store.segment_count(name)
        if members:
            out.append(SegmentInfo(name, "removed", members, versions[name]))
    return out


def count_members(store: ProfileStore, name: str) -> int:
    """Members of a segment now: one ZCARD, whatever its size."""
    return store.segment_count(name)


def export_members(store: ProfileStore, rule: SegmentRule, *, chunk: int = CHUNK,
                   purpose: str | None = None) -> pa.Table:
    """Every member with its profile's columns (``EXPORT_SCHEMA``; nulls where no profile exists,
    as for an SQL segment member the stream never saw); each OneID once. For a consent
    ``purpose`` (given, else the segment's own ``purpose:``) only members whose profile allows it:
    a member without a profile has given no answer anyone can check, so is left out."""
    purpose = purpose or rule.purpose
    batches = [pa.Table.from_pylist(rows, schema=EXPORT_SCHEMA)
               for rows in _member_rows(store, rule, chunk, purpose)]
    return pa.concat_tables(batches) if batches else EXPORT_SCHEMA.empty_table()


def _allows(profile: dict[str, Any] | None, purpose: str | None) -> bool:
    return purpose is None or (profile is not None and (profile.get("consent") or {}).get(purpose) is True)


def _member_rows(store: ProfileStore, rule: SegmentRule, chunk: int,
                 purpose: str | None) -> Iterator[list[dict[str, Any]]]:
    seen: set[str] = set()
    for members in store.segment_members(rule.name, chunk):
        fresh = [(oneid, score) for oneid, score in members if oneid not in seen]
        seen.update(oneid for oneid, _ in fresh)
        profiles = store.get_profiles([oneid for oneid, _ in fresh])
        rows = []
        for (oneid, score), profile in zip(fresh, profiles, strict=True):
            if not _allows(profile, purpose):
                continue
            since = score if rule.kind == "sql" else (profile or {}).get("segments", {}).get(rule.name)
            rows.append(_row(oneid, since, profile))
        yield rows


def _row(oneid: str, since: int | None, profile: dict[str, Any] | None) -> dict[str, Any]:
    row: dict[str, Any] = {"oneid": oneid, "member_since": since}
    if profile is None:
        return row
    for name in ("first_seen", "last_seen", "last_interaction", "tier"):
        row[name] = profile.get(name)
    score = profile.get("score")
    row["score"] = float(score) if isinstance(score, int | float) else None
    for name in ("tags", "aggregates", "traits", "consent"):
        row[name] = json.dumps(profile.get(name), default=str, ensure_ascii=False, sort_keys=True)
    return row


def target_members(con: duckdb.DuckDBPyConnection, rule: SegmentRule) -> set[str]:
    """The survivors of the OneIDs an SQL segment's query returns now."""
    assert rule.sql is not None
    if run_query(con, "SELECT count(*) FROM events_raw").column(0)[0].as_py() == 0:
        raise SegmentError("the lake holds no events: refusing to refresh (an empty answer would empty "
                           f"segment {rule.name}); is TOUCHSTREAM_LAKE_PATH right?")
    try:
        columns = run_query(con, f"SELECT * FROM ({rule.sql}) AS q LIMIT 0").column_names  # noqa: S608
    except LakeError as exc:
        raise SegmentError(f"segment {rule.name}: {exc}") from None
    if "oneid" not in columns:
        raise SegmentError(f"segment {rule.name}: the query returns {columns}, not a oneid column")
    # the operator's own query, from the rules file, as a subquery: nothing a client wrote
    mapped = f"""
        SELECT DISTINCT coalesce(i.survivor, CAST(q.oneid AS VARCHAR)) AS oneid
        FROM ({rule.sql}) AS q LEFT JOIN identities AS i ON i.oneid = CAST(q.oneid AS VARCHAR)
        WHERE q.oneid IS NOT NULL
    """  # noqa: S608
    return {str(v) for v in run_query(con, mapped).column(0).to_pylist()}


def refresh(store: ProfileStore, con: duckdb.DuckDBPyConnection, rule: SegmentRule, publisher: Publisher, *,
            now_ms: int | None = None, chunk: int = CHUNK,
            after_chunk: Callable[[], None] = lambda: None) -> RefreshOutcome:
    """Bring one SQL segment's members to its query's answer (see the module doc); the caller holds
    the refresh lock (:func:`refresh_all` does)."""
    if rule.sql is None:
        raise SegmentError(f"segment {rule.name} is a stream segment (`if:`): the stream keeps it current")
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    target = target_members(con, rule)
    current = {oneid for members in store.segment_members(rule.name) for oneid, _ in members}
    changes = [(oneid, True) for oneid in sorted(target - current)]
    changes += [(oneid, False) for oneid in sorted(current - target)]
    outcome = RefreshOutcome(rule.name, members=len(target))
    for lo in range(0, len(changes), chunk):
        records = store.set_members(rule.name, changes[lo:lo + chunk], now_ms)
        publisher.send(records)
        after_chunk()
        outcome.records += records
    outcome.entered = sum(1 for r in outcome.records if r["type"] == "segment_entered")
    outcome.exited = len(outcome.records) - outcome.entered
    return outcome


def refresh_all(store: ProfileStore, con: duckdb.DuckDBPyConnection, rules: Rules, publisher: Publisher,
                names: Sequence[str] = (), *, now_ms: int | None = None,
                chunk: int = CHUNK) -> list[RefreshOutcome]:
    """Refresh the named SQL segments (default: every SQL segment) under the refresh lock, after
    sending what a cut-short refresh left in the outbox."""
    unknown = [n for n in names if n not in rules.segments]
    if unknown:
        raise SegmentError(f"no segment named {', '.join(unknown)} in the rules")
    chosen = [rules.segments[n] for n in names] or [s for s in rules.segments.values() if s.sql is not None]
    lock = store.refresh_lock(LOCK_S)
    if not lock.acquire(blocking=False):
        raise SegmentError("another segment refresh is running (it frees the lock when done, or "
                           f"{LOCK_S:.0f} s after a crash)")

    def keep_lock() -> None:
        lock.extend(LOCK_S, replace_ttl=True)

    try:
        left = publisher.leftovers()
        if left:
            log.warning("sending %s segment change(s) an earlier refresh left unsent", len(left))
            publisher.send(left)
        outcomes = [refresh(store, con, rule, publisher, now_ms=now_ms, chunk=chunk, after_chunk=keep_lock)
                    for rule in chosen]
        if outcomes:
            outcomes[0].resent = len(left)
        return outcomes
    finally:
        try:
            lock.release()
        except LockError:  # it expired (a chunk took longer than LOCK_S): nothing to give back
            log.warning("the segment refresh lock had expired before the refresh ended")
