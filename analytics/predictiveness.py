"""Is the lead score predictive? Conversion per score band, from the lake's history.

**Where the score history comes from: the ``score_crossed`` triggers, not a recomputation.**
The live score is behaviour points decayed with a half-life, attribute points from traits, CEL
conditions, a cap, merges folding two scores into one: only the profile engine computes it
exactly, and replaying every event through it costs ~145 µs an event (25 minutes at 10M). The
engine already wrote its verdicts down: a ``score_crossed`` trigger fires, at the event's time,
whenever the score rises above the rule's ``above``. So the bands are the thresholds of those
rules (the default rules have one, ``mql_reached`` above 60: two bands); a marketer who wants
finer bands adds ``score_crossed`` rules (e.g. above 20, 40, 80), and history from then on has
them. A band is the highest threshold a lead had crossed *before* converting (the peak, not the
score at the moment: a score decays), or ever, for a lead who did not convert.

Leads are people (survivors) with at least one identifier of a non-anonymous type (an email, a
phone, a login: someone sales can reach); converted means an event of ``conversion`` (a step
spelling of :mod:`analytics.steps`, ``Order Completed`` by default).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa

from analytics.exceptions import AnalyticsError
from analytics.people import event_source, with_person
from analytics.steps import parse_step
from profiles.durations import DAY_MS
from profiles.rules.model import Rules

DEFAULT_CONVERSION = "Order Completed"
ANONYMOUS_TYPES = ("anonymous_id", "device_id")  # identity/default_rules.yaml's anonymous_types

_SQL = """
WITH leads AS (
    SELECT DISTINCT person FROM {known}),
conversions AS (
    SELECT person, min(t) AS at FROM {converted} GROUP BY person),
thresholds AS (SELECT unnest($rules) AS rule, unnest($aboves) AS above),
crossings AS (
    SELECT t.person, h.above, t.event_time FROM {triggers} t JOIN thresholds h ON h.rule = t.rule),
reached AS (  -- per lead: each threshold crossed before converting, first crossed when
    SELECT l.person, x.above, min(x.event_time) AS first_at
    FROM leads l LEFT JOIN conversions c ON c.person = l.person
    JOIN crossings x ON x.person = l.person AND (c.at IS NULL OR x.event_time < c.at)
        AND ($as_of IS NULL OR x.event_time <= $as_of)
    GROUP BY ALL),
peak AS (SELECT person, max(above) AS top, arg_max(first_at, above) AS top_at FROM reached GROUP BY person)
SELECT p.top, count(*), count(c.at), median(c.at - p.top_at) FILTER (WHERE c.at IS NOT NULL)
FROM leads l LEFT JOIN peak p ON p.person = l.person LEFT JOIN conversions c ON c.person = l.person
GROUP BY p.top ORDER BY p.top NULLS FIRST
"""


@dataclass(frozen=True)
class Band:
    low: float | None  # the threshold crossed (None: below every threshold)
    high: float | None  # the next threshold up (None: the top band)
    leads: int
    converted: int
    median_ms_to_convert: float | None  # from first crossing into the band; None for the lowest

    @property
    def label(self) -> str:
        if self.low is None:
            return "all" if self.high is None else f"<= {self.high:g}"
        return f"> {self.low:g}" if self.high is None else f"> {self.low:g} to {self.high:g}"

    @property
    def median_days_to_convert(self) -> float | None:
        return None if self.median_ms_to_convert is None else self.median_ms_to_convert / DAY_MS

    @property
    def rate(self) -> float | None:
        return self.converted / self.leads if self.leads else None


@dataclass(frozen=True)
class PredictivenessResult:
    conversion: str
    thresholds: dict[str, float]  # the score_crossed rules read, rule -> above
    bands: tuple[Band, ...]  # lowest first

    @property
    def leads(self) -> int:
        return sum(b.leads for b in self.bands)

    @property
    def converted(self) -> int:
        return sum(b.converted for b in self.bands)

    def source(self) -> str:
        rules = ", ".join(f"{rule} (> {above:g})" for rule, above in sorted(self.thresholds.items(),
                                                                             key=lambda kv: kv[1]))
        return f"score_crossed triggers: {rules}" if rules else "no score_crossed rule: one band"

    def table(self) -> pa.Table:
        """Per band: leads, converted, conversion rate and its lift over all leads, days to convert."""
        overall = self.converted / self.leads if self.leads else None
        rows: list[dict[str, Any]] = []
        for b in self.bands:
            rate = b.rate
            rows.append({"band": b.label, "leads": b.leads, "converted": b.converted,
                         "conversion_rate": None if rate is None else round(rate, 4),
                         "lift": None if rate is None or not overall else round(rate / overall, 2),
                         "median_days_to_convert": None if b.median_days_to_convert is None
                         else round(b.median_days_to_convert, 1)})
        return pa.Table.from_pylist(rows)


def _query(conversion: str, events: str) -> str:
    """Leads and first conversions per OneID, then per person: an existence and a first time, which
    copies of an event cannot change (so ``events_raw``, not deduplicated)."""
    known = with_person(f"""(SELECT DISTINCT oneid FROM {events}
        WHERE oneid IS NOT NULL AND len(identifiers) > 0
        AND len(list_filter(identifiers, lambda x: NOT list_contains($anonymous, x.type))) > 0)""")  # noqa: S608
    converted = with_person(f"""(SELECT oneid, min(timestamp) AS t FROM {events}
        WHERE oneid IS NOT NULL AND {conversion} AND ($as_of IS NULL OR timestamp <= $as_of)
        GROUP BY oneid)""")  # noqa: S608 (the step's SQL carries its values as parameters)
    return _SQL.format(known=known, converted=converted, triggers=with_person("triggers"))


def score_thresholds(rules: Rules) -> dict[str, float]:
    """The ``score_crossed`` rules of a rules file and their thresholds."""
    return {rule.name: float(rule.params.above) for rule in rules.trigger_of_kind("score_crossed")}


def predictiveness(con: duckdb.DuckDBPyConnection, thresholds: Mapping[str, float], *,
                   conversion: str = DEFAULT_CONVERSION, anonymous_types: Sequence[str] = ANONYMOUS_TYPES,
                   as_of_ms: int | None = None) -> PredictivenessResult:
    """Leads and conversions per lead-score band (see the module docstring for the bands)."""
    predicate, params = parse_step(conversion).predicate("conversion")
    params |= {"anonymous": list(anonymous_types), "as_of": as_of_ms, "rules": list(thresholds),
               "aboves": [float(v) for v in thresholds.values()]}
    try:
        rows = con.execute(_query(predicate, event_source(con)), params).fetchall()
    except duckdb.Error as exc:
        raise AnalyticsError(f"predictiveness query failed: {exc}") from None
    found = {None if row[0] is None else float(row[0]): row[1:] for row in rows}
    edges: list[float | None] = [None, *sorted(set(float(v) for v in thresholds.values()))]
    bands = []
    for i, low in enumerate(edges):
        leads, converted, median_ms = found.get(low, (0, 0, None))
        high = edges[i + 1] if i + 1 < len(edges) else None
        wait = None if median_ms is None or low is None else float(median_ms)
        bands.append(Band(low, high, int(leads), int(converted), wait))
    return PredictivenessResult(conversion, dict(thresholds), tuple(bands))
