"""Activation: how much of the customer data marketing actually used lately, and how much sleeps.

Over the profiles of the snapshot (``touchstream lake snapshot``: one row per survivor), in the
``window`` (30 days) before ``as_of`` (by default the moment the snapshot was taken):

- **touched by a trigger**: a trigger fired for the person (``triggers``, merged OneIDs followed);
- **touched by a tag**: the person held a tag as of their last event, and that event lies in the
  window (the snapshot keeps tags as of each profile's last event, not their history; a tag is
  kept until its ``ttl`` after the last time its condition held, so this reads "a tag rule
  matched them within the window or its ttl");
- **activated**: either of them; **dormant**: the rest, split into the *active but untouched*
  (an interaction in the window, yet nothing used it: the opportunity) and the *asleep*.

Segments (a later floor of the profiles) will add a third kind of touch here.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from analytics.exceptions import AnalyticsError
from analytics.people import with_person
from profiles.durations import DAY_MS, parse_duration

DEFAULT_WINDOW_MS = 30 * DAY_MS

_SQL = """
WITH pop AS (
    SELECT oneid, any_value(as_of) AS as_of, any_value(last_interaction) AS last_interaction,
           any_value(tags) AS tags
    FROM profiles GROUP BY oneid),
fired AS (
    SELECT DISTINCT person, rule FROM {triggers} WHERE fired_at > $since AND fired_at <= $as_of),
held AS (
    SELECT oneid AS person, unnest(from_json(tags, '["VARCHAR"]')) AS tag FROM pop
    WHERE as_of > $since AND as_of <= $as_of AND json_array_length(tags) > 0),
touched AS (
    SELECT p.oneid,
           p.oneid IN (SELECT person FROM fired) AS by_trigger,
           p.oneid IN (SELECT person FROM held) AS by_tag,
           coalesce(p.last_interaction > $since AND p.last_interaction <= $as_of, false) AS active
    FROM pop p)
SELECT count(*), count(*) FILTER (WHERE by_trigger), count(*) FILTER (WHERE by_tag),
       count(*) FILTER (WHERE by_trigger OR by_tag),
       count(*) FILTER (WHERE NOT (by_trigger OR by_tag) AND active),
       (SELECT list(struct_pack(kind := 'trigger', name := rule, people := n) ORDER BY n DESC, rule) FROM (
            SELECT rule, count(*) AS n FROM fired WHERE person IN (SELECT oneid FROM pop) GROUP BY rule)),
       (SELECT list(struct_pack(kind := 'tag', name := tag, people := n) ORDER BY n DESC, tag) FROM (
            SELECT tag, count(DISTINCT person) AS n FROM held GROUP BY tag))
FROM touched
"""


@dataclass(frozen=True)
class Touch:
    kind: str  # trigger | tag
    name: str
    people: int


@dataclass(frozen=True)
class ActivationResult:
    as_of_ms: int
    window_ms: int
    profiles: int
    by_trigger: int
    by_tag: int
    activated: int
    active_untouched: int  # dormant, yet with an interaction in the window
    touches: tuple[Touch, ...]  # people per trigger rule and per tag, most first

    @property
    def dormant(self) -> int:
        return self.profiles - self.activated

    @property
    def asleep(self) -> int:
        return self.dormant - self.active_untouched

    def share(self, count: int) -> float | None:
        return count / self.profiles if self.profiles else None

    def table(self) -> pa.Table:
        rows = [("profiles", self.profiles), ("activated", self.activated),
                ("touched by a trigger", self.by_trigger), ("touched by a tag", self.by_tag),
                ("dormant", self.dormant), ("dormant, active but untouched", self.active_untouched),
                ("dormant, asleep", self.asleep)]
        rows += [(f"{t.kind}: {t.name}", t.people) for t in self.touches]
        return pa.Table.from_pylist([{"measure": name, "people": n, "share": _round(self.share(n))}
                                     for name, n in rows])


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def activation(con: duckdb.DuckDBPyConnection, *, window: str | int = DEFAULT_WINDOW_MS,
               as_of_ms: int | None = None) -> ActivationResult:
    """Activated and dormant profiles of the snapshot; AnalyticsError when the lake has no snapshot."""
    try:
        window_ms = parse_duration(window) if isinstance(window, str) else int(window)
    except ValueError as exc:
        raise AnalyticsError(f"window: {exc}") from None
    try:
        taken = con.execute("SELECT max(snapshot_at) FROM profiles").fetchone()
        if as_of_ms is None:
            if taken is None or taken[0] is None:
                raise AnalyticsError("the lake has no profiles snapshot: run `touchstream lake snapshot`")
            as_of_ms = int(taken[0])
        query = _SQL.format(triggers=with_person("triggers"))
        row = con.execute(query, {"since": as_of_ms - window_ms, "as_of": as_of_ms}).fetchone()
    except duckdb.Error as exc:
        raise AnalyticsError(f"activation query failed: {exc}") from None
    assert row is not None  # an aggregate without GROUP BY has a row
    touches = tuple(Touch(t["kind"], t["name"], int(t["people"])) for t in [*(row[5] or []), *(row[6] or [])])
    profiles, by_trigger, by_tag, activated, active_untouched = (int(v) for v in row[:5])
    return ActivationResult(as_of_ms, window_ms, profiles, by_trigger, by_tag, activated, active_untouched,
                            touches)
