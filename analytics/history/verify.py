"""`touchstream verify`: the live profile state against what the lake's history says it must be.

For every person with an accepted event in the lake (a survivor of the ``identities`` view), the
live profile is read as of one time (the profile store's ``get_profile``, batched) and
compared with :class:`~analytics.history.state.History` as of the same time, field by field:
every aggregate, the active tags, the score (within ``score_tolerance``: the stream rounds the
stored score to 10 significant digits per event) and the tier. Counts, unique estimates,
first/last values and tiers compare exactly; sums, minima and maxima within a relative 1e-9.

Run it when the lake has caught up with the stream (the lake sink's lag is on its /metrics):
an event the stream applied and the lake does not hold yet is a difference, as is one in the
lake the stream has not applied yet. History's own limits are in ``base.py``, ``tags.py`` and
``replay.py`` (lateness after merges, arrival order); rules it cannot check are listed in the
report, never silently passed.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import duckdb

from analytics.history.state import History, HistoryProfile
from profiles.rules.model import Rules

LiveRead = Callable[[Sequence[str], int], Sequence[dict[str, Any] | None]]
SCORE_TOLERANCE = 0.002
_RELATIVE = 1e-9


@dataclass(frozen=True)
class Difference:
    """One field of one profile where live and history disagree."""

    oneid: str
    field: str
    live: Any
    history: Any


@dataclass
class Report:
    """What verify compared and what differed."""

    as_of: int
    profiles: int = 0
    fields: int = 0
    events: int = 0
    differences: list[Difference] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)  # CEL the runtime evaluated over rows
    unchecked: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.differences

    def summary(self) -> str:
        differing = len({d.oneid for d in self.differences})
        line = (f"verify as of {self.as_of}: {self.profiles} profile(s), {self.fields} field(s) from "
                f"{self.events} event(s); {len(self.differences)} difference(s) in {differing} profile(s)")
        if self.unchecked:
            line += "; not checked: " + ", ".join(f"{k} ({v})" for k, v in sorted(self.unchecked.items()))
        return line

    def render_table(self) -> str:
        rows = [(d.oneid, d.field, _text(d.live), _text(d.history)) for d in self.differences]
        lines = []
        if rows:
            head = ("profile", "field", "live", "history")
            widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(head)]
            lines.append("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
            lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
        lines.append(self.summary())
        return "\n".join(lines) + "\n"

    def render_json(self) -> str:
        """One JSON object per difference, then the summary object (``"summary": true``)."""
        out = [json.dumps(asdict(d), default=str, ensure_ascii=False) for d in self.differences]
        summary = {"summary": True, "as_of": self.as_of, "profiles": self.profiles, "fields": self.fields,
                   "events": self.events, "differences": len(self.differences), "evaluated": self.evaluated,
                   "unchecked": self.unchecked, "timings": {k: round(v, 3) for k, v in self.timings.items()}}
        out.append(json.dumps(summary, ensure_ascii=False))
        return "\n".join(out) + "\n"


def _text(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False) if not isinstance(value, str) else value


def same_number(a: Any, b: Any, relative: float = _RELATIVE, absolute: float = 0.0) -> bool:
    numbers = [isinstance(x, int | float) and not isinstance(x, bool) for x in (a, b)]
    if not all(numbers):
        return bool(a == b)
    return math.isclose(a, b, rel_tol=relative, abs_tol=absolute)


def compare(rules: Rules, oneid: str, live: dict[str, Any] | None, history: HistoryProfile,
            defaults: dict[str, Any], score_tolerance: float = SCORE_TOLERANCE, *, with_score: bool = True,
            hidden_tags: frozenset[str] | None = frozenset()) -> tuple[int, list[Difference]]:
    """(fields compared, differences) of one profile: the aggregates of ``defaults`` (history's
    value, else the default), tags but those in ``hidden_tags`` (None: no tag), score, tier."""
    if live is None:
        return 1, [Difference(oneid, "profile", None, "present")]
    out = []
    if live.get("oneid") not in (None, oneid):
        out.append(Difference(oneid, "oneid", live.get("oneid"), oneid))
    live_aggs = live.get("aggregates") or {}
    fields = 0
    found = history.aggregates
    for name, default in defaults.items():
        value = found.get(name, default)
        fields += 1
        op = rules.aggregates[name].op
        mine = live_aggs.get(name)
        equal = same_number(mine, value) if op in ("sum", "min", "max", "first", "last") else mine == value
        if not equal:
            out.append(Difference(oneid, f"aggregates.{name}", mine, value))
    if hidden_tags is not None:
        fields += 1
        live_tags = sorted(t for t in live.get("tags") or [] if t not in hidden_tags)
        if live_tags != sorted(history.tags):
            out.append(Difference(oneid, "tags", live_tags, sorted(history.tags)))
    if with_score:
        fields += 2
        if not same_number(live.get("score"), history.score, 0.0, score_tolerance):
            out.append(Difference(oneid, "score", live.get("score"), history.score))
        if live.get("tier") != history.tier:
            out.append(Difference(oneid, "tier", live.get("tier"), history.tier))
    return fields, out


def verify(con: duckdb.DuckDBPyConnection, rules: Rules, live_read: LiveRead, as_of_ms: int, *,
           skew_ms: int = 300_000, batch: int = 1000, score_tolerance: float = SCORE_TOLERANCE,
           aggregates: Iterable[str] | None = None, with_tags: bool = True,
           with_score: bool = True) -> Report:
    """Compare the live profiles (``live_read(oneids, as_of_ms)``, in order, None when absent)
    with history as of ``as_of_ms`` over the lake ``con`` reads (``connectors.lake.query.connect``)."""
    started = time.perf_counter()
    history = History(con, rules, skew_ms=skew_ms, with_tags=with_tags, with_score=with_score,
                      aggregate_names=None if aggregates is None else tuple(aggregates))
    expected = history.profiles(as_of_ms)
    report = Report(as_of_ms, events=history.rows, evaluated=history.evaluated, unchecked=history.unchecked)
    report.timings.update(history.timings)
    report.timings["history"] = time.perf_counter() - started
    started = time.perf_counter()
    oneids = list(expected)
    hidden = history.hidden_tags if with_tags else None
    defaults = history.defaults
    if hidden is None and with_tags:
        report.unchecked["tags"] = "an unchecked tag rule names its tags by an expression"
    read_s = 0.0
    for i in range(0, len(oneids), batch):
        chunk = oneids[i:i + batch]
        t0 = time.perf_counter()
        lives = live_read(chunk, as_of_ms)
        read_s += time.perf_counter() - t0
        for oneid, live in zip(chunk, lives, strict=True):
            fields, found = compare(rules, oneid, live, expected[oneid], defaults, score_tolerance,
                                    with_score=with_score, hidden_tags=hidden)
            report.fields += fields
            report.differences += found
    report.profiles = len(oneids)
    report.timings["live_read"] = read_s
    report.timings["compare"] = time.perf_counter() - started - read_s
    return report
