"""Activation: how much of the customer data marketing actually used lately, and how much sleeps.

Over the profiles of the snapshot (``touchstream lake snapshot``: one row per survivor), in the
``window`` (30 days) before ``as_of`` (by default the moment the snapshot was taken):

- **touched by a trigger**: a trigger fired for the person (``triggers``, merged OneIDs followed);
- **touched by a tag**: the person held a tag as of their last event, and that event lies in the
  window (the snapshot keeps tags as of each profile's last event, not their history; a tag is
  kept until its ``ttl`` after the last time its condition held, so this reads "a tag rule
  matched them within the window or its ttl");
- **touched by a segment**: the person was in a segment at some time in the window (entered it
  in the window, or was still in it when the window began: ``segments``, the entry and exit
  records of the profile rules' segments);
- **activated**: any of them; **dormant**: the rest, split into the *active but untouched*
  (an interaction in the window, yet nothing used it: the opportunity) and the *asleep*.
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
membership AS (  -- per OneID and segment: entered in the window, or a member when it began
    SELECT oneid, segment,
           bool_or(type = 'segment_entered' AND changed_at > $since AND changed_at <= $as_of) AS entered,
           arg_max(type, version) FILTER (WHERE changed_at <= $since) AS at_start
    FROM segments GROUP BY oneid, segment),
joined AS (
    SELECT DISTINCT person, segment FROM {membership}
    WHERE entered OR at_start = 'segment_entered'),
touched AS (
    SELECT p.oneid,
           p.oneid IN (SELECT person FROM fired) AS by_trigger,
           p.oneid IN (SELECT person FROM held) AS by_tag,
           p.oneid IN (SELECT person FROM joined) AS by_segment,
           coalesce(p.last_interaction > $since AND p.last_interaction <= $as_of, false) AS active
    FROM pop p)
SELECT count(*), count(*) FILTER (WHERE by_trigger), count(*) FILTER (WHERE by_tag),
       count(*) FILTER (WHERE by_segment),
       count(*) FILTER (WHERE by_trigger OR by_tag OR by_segment),
       count(*) FILTER (WHERE NOT (by_trigger OR by_tag OR by_segment) AND active),
       (SELECT list(struct_pack(kind := 'trigger', name := rule, people := n) ORDER BY n DESC, rule) FROM (
            SELECT rule, count(*) AS n FROM fired WHERE person IN (SELECT oneid FROM pop) GROUP BY rule)),
       (SELECT list(struct_pack(kind := 'tag', name := tag, people := n) ORDER BY n DESC, tag) FROM (
            SELECT tag, count(DISTINCT person) AS n FROM held GROUP BY tag)),
       (SELECT list(struct_pack(kind := 'segment', name := segment, people := n) ORDER BY n DESC, segment)
        FROM (SELECT segment, count(*) AS n FROM joined WHERE person IN (SELECT oneid FROM pop)
              GROUP BY segment))
FROM touched
"""


@dataclass(frozen=True)
class Touch:
    kind: str  # trigger | tag | segment
    name: str
    people: int


@dataclass(frozen=True)
class ActivationResult:
    as_of_ms: int
    window_ms: int
    profiles: int
    by_trigger: int
    by_tag: int
    by_segment: int
    activated: int
    active_untouched: int  # dormant, yet with an interaction in the window
    touches: tuple[Touch, ...]  # people per trigger rule, tag and segment, most first

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
                ("touched by a segment", self.by_segment),
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
        [taken] = con.execute("SELECT max(snapshot_at) FROM profiles").fetchall()
        if as_of_ms is None:
            if taken is None or taken[0] is None:
                raise AnalyticsError("the lake has no profiles snapshot: run `touchstream lake snapshot`")
            as_of_ms = int(taken[0])
        query = _SQL.format(triggers=with_person("triggers"), membership=with_person("membership"))
        [row] = con.execute(query, {"since": as_of_ms - window_ms, "as_of": as_of_ms}).fetchall()
    except duckdb.Error as exc:
        raise AnalyticsError(f"activation query failed: {exc}") from None
    touches = tuple(Touch(t["kind"], t["name"], int(t["people"])) for lists in row[6:] for t in lists or [])
    profiles, by_trigger, by_tag, by_segment, activated, active_untouched = (int(v) for v in row[:6])
    return ActivationResult(as_of_ms, window_ms, profiles, by_trigger, by_tag, by_segment, activated,
                            active_untouched, touches)
