"""The report's sections: each asks one question of the lake and draws its answer beside its numbers.

A section that cannot be answered (no orders yet, no profiles snapshot, no trigger) says so and
why, as "not available", and the report goes on: a report is read by people, and half a report
with the reasons beats an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from analytics.activation import activation
from analytics.attribution import MODELS, AttributionOptions, attribution
from analytics.funnels import funnel
from analytics.predictiveness import DEFAULT_CONVERSION, predictiveness
from analytics.report import svg
from analytics.retention import retention
from analytics.rfm import SEGMENTS, RfmOptions, rfm, segment_counts, segment_of
from analytics.trigger_history import triggers_over_time
from touchstream.errors import TouchstreamError

DEFAULT_FUNNEL = ("page", "Product Viewed", "Order Completed")


@dataclass(frozen=True)
class ReportOptions:
    funnel_steps: tuple[str, ...] = DEFAULT_FUNNEL
    funnel_window: str = "7d"
    retention_weeks: int = 8
    conversion: str = DEFAULT_CONVERSION
    thresholds: Mapping[str, float] = field(default_factory=dict)  # score_crossed rule -> above
    attribution: AttributionOptions = field(default_factory=AttributionOptions)
    as_of_ms: int | None = None  # RFM's "now" (default: now)
    title: str = "Touchstream marketing report"


@dataclass(frozen=True)
class Section:
    key: str
    title: str
    note: str  # what it shows, in one or two sentences
    chart: str | None = None  # inline SVG
    table: pa.Table | None = None  # the numbers beside it
    unavailable: str | None = None  # why it could not be drawn


Build = Callable[[duckdb.DuckDBPyConnection, ReportOptions], Section]


def _attribution(con: duckdb.DuckDBPyConnection, options: ReportOptions) -> Section:
    title, note = "Attribution by model", (
        f"Conversions ({options.attribution.conversion.event}) credited to each channel by every model, "
        f"touches within {options.attribution.lookback_ms // 86_400_000} days before; "
        "(none) is conversions no touch preceded.")
    table = attribution(con, options.attribution)
    if table.num_rows == 0:
        return Section("attribution", title, note, unavailable="no conversion in the lake yet")
    key = table.column_names[0]
    channels = [str(v) for v in table.column(key).to_pylist()]
    series = [(m, [float(v) for v in table.column(f"{m}_conversions").to_pylist()]) for m in MODELS]
    revenue = [round(float(v), 2) for v in table.column("linear_revenue").to_pylist()]
    numbers = pa.table({key: channels, **{m: [round(v, 2) for v in values] for m, values in series},
                        "linear_revenue": revenue})
    chart = svg.grouped_hbars("attribution", title, channels, series)
    return Section("attribution", title, note, chart, numbers)


def _rfm(con: duckdb.DuckDBPyConnection, options: ReportOptions) -> Section:
    title, note = "RFM grid", ("Customers by recency score (R, columns) and the mean of frequency and "
                               "monetary scores (FM, rows), each cell named by its segment.")
    scores = rfm(con, RfmOptions(conversion=options.attribution.conversion, as_of_ms=options.as_of_ms))
    if scores.num_rows == 0:
        return Section("rfm", title, note, unavailable="no order in the lake yet")
    cells: dict[tuple[int, int], int] = {}
    for r, f, m in zip(*(scores.column(c).to_pylist() for c in ("r", "f", "m")), strict=True):
        fm = (f + m + 1) // 2
        cells[(fm, r)] = cells.get((fm, r), 0) + 1
    fms, rs = range(5, 0, -1), range(1, 6)
    grid = [[float(cells.get((fm, r), 0)) for r in rs] for fm in fms]
    chart = svg.heat_grid("rfm", title, [f"R {r}" for r in rs], [f"FM {fm}" for fm in fms], grid,
                          [[svg.number(v) for v in row] for row in grid],
                          names=[[segment_of(r, fm, fm).replace("_", " ") for r in rs] for fm in fms])
    counts = segment_counts(scores)
    numbers = pa.table({"segment": counts.column("segment"), "R": counts.column("r"),
                        "FM": counts.column("fm"), "customers": counts.column("customers"),
                        "share": [round(v, 4) for v in counts.column("share").to_pylist()],
                        "revenue": [round(v, 2) for v in counts.column("revenue").to_pylist()]})
    assert len(SEGMENTS) == counts.num_rows
    return Section("rfm", title, note, chart, numbers)


def _funnel(con: duckdb.DuckDBPyConnection, options: ReportOptions) -> Section:
    steps = " → ".join(options.funnel_steps)
    title, note = "Funnel", f"{steps}, each step within {options.funnel_window} of the first."
    result = funnel(con, options.funnel_steps, window=options.funnel_window)
    if result.overall.entered == 0:
        return Section("funnel", title, note, unavailable=f"nobody did {options.funnel_steps[0]!r} yet")
    rows = result.overall.rows()
    chart = svg.hbars("funnel", title, [r["name"] for r in rows], [float(r["people"]) for r in rows],
                      notes=[svg.percent(r["conversion"]) for r in rows])
    numbers = result.table().select(["step", "name", "people", "conversion", "drop_off",
                                     "median_s_from_previous"])
    return Section("funnel", title, note, chart, numbers)


def _retention(con: duckdb.DuckDBPyConnection, options: ReportOptions) -> Section:
    title, note = "Retention", ("Weekly cohorts by first activity: the share active again on or after "
                                "each later week (blank: not known yet).")
    result = retention(con, weeks=options.retention_weeks)
    if not result.cohorts:
        return Section("retention", title, note, unavailable="no activity in the lake yet")
    weeks = [f"W{n}" for n in range(result.weeks + 1)]
    shares = [c.shares() for c in result.cohorts]
    chart = svg.heat_grid("retention", title, weeks, [c.start.isoformat() for c in result.cohorts], shares,
                          [["" if s is None else f"{s:.0%}" for s in row] for row in shares])
    return Section("retention", title, note, chart, result.grid())


def _triggers(con: duckdb.DuckDBPyConnection, options: ReportOptions) -> Section:
    title, note = "Triggers over time", "Triggers fired per rule and UTC day (per week over long spans)."
    series = triggers_over_time(con)
    if len(series.starts) > 120:
        series = triggers_over_time(con, bucket="week")
    if not series.counts:
        return Section("triggers", title, note, unavailable="no trigger in the lake yet")
    rules = [(rule, [float(v) for v in values]) for rule, values in series.counts.items()]
    chart = svg.stacked_columns("triggers", title, series.starts, rules)
    numbers = pa.table({"rule": list(series.totals()), "triggers": list(series.totals().values()),
                        "busiest": [series.starts[max(range(len(v)), key=v.__getitem__)]
                                    for v in series.counts.values()]})
    return Section("triggers", title, note, chart, numbers)


def _activation(con: duckdb.DuckDBPyConnection, options: ReportOptions) -> Section:
    title, note = "Activation", ("Profiles touched by a trigger, tag or segment in the 30 days before the "
                                 "profiles snapshot, and the dormant rest.")
    result = activation(con)
    if result.profiles == 0:
        return Section("activation", title, note, unavailable="the profiles snapshot is empty")
    chart = svg.stacked_bar("activation", title, [("activated", result.activated),
                                                  ("dormant, active but untouched", result.active_untouched),
                                                  ("dormant, asleep", result.asleep)])
    return Section("activation", title, note, chart, result.table())


def _scores(con: duckdb.DuckDBPyConnection, options: ReportOptions) -> Section:
    title = "Is the lead score predictive?"
    result = predictiveness(con, options.thresholds, conversion=options.conversion)
    note = (f"Leads by the highest lead-score band reached before converting ({options.conversion}); "
            f"bands from {result.source()}.")
    if result.leads == 0:
        return Section("scores", title, note, unavailable="no known lead in the lake yet")
    chart = svg.hbars("scores", title, [b.label for b in result.bands], [b.rate or 0.0 for b in result.bands],
                      fmt=svg.percent, notes=[f"of {b.leads:,}" for b in result.bands])
    return Section("scores", title, note, chart, result.table())


SECTIONS: tuple[Build, ...] = (_attribution, _rfm, _funnel, _retention, _triggers, _activation, _scores)
TITLES = {"attribution": "Attribution by model", "rfm": "RFM grid", "funnel": "Funnel",
          "retention": "Retention", "triggers": "Triggers over time", "activation": "Activation",
          "scores": "Is the lead score predictive?"}


def build_sections(con: duckdb.DuckDBPyConnection, options: ReportOptions) -> list[Section]:
    """Every section; one that fails on its data (a lake error, a missing snapshot) is "not available"."""
    out = []
    for build in SECTIONS:
        key = build.__name__.strip("_")
        try:
            out.append(build(con, options))
        except (TouchstreamError, duckdb.Error, ValueError) as exc:
            out.append(Section(key, TITLES[key], "", unavailable=str(exc)))
    return out
