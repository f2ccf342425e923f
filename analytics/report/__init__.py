"""``touchstream report``: the lake's answers in one self-contained HTML file.

Attribution by model, the RFM grid, a funnel, retention, triggers over time by rule, activation
and the lead-score bands, each chart beside its numbers. The file opens offline: CSS and SVG are
inline, there is no script and no reference to anything outside it (``svg.py`` says why no
chart library).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from analytics.report.page import render
from analytics.report.sections import DEFAULT_FUNNEL, ReportOptions, Section, build_sections

__all__ = ["DEFAULT_FUNNEL", "ReportOptions", "Section", "build_report", "write_report"]


def build_report(con: duckdb.DuckDBPyConnection, options: ReportOptions | None = None,
                 subtitle: str = "from the event lake") -> str:
    """The report's HTML text."""
    options = options or ReportOptions()
    return render(options.title, build_sections(con, options), subtitle)


def write_report(con: duckdb.DuckDBPyConnection, out: Path, options: ReportOptions | None = None,
                 subtitle: str = "from the event lake") -> list[Section]:
    """Write the report to ``out`` (through a temporary name: a reader never sees half a file);
    the sections, to tell which were not available."""
    options = options or ReportOptions()
    sections = build_sections(con, options)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(render(options.title, sections, subtitle), encoding="utf-8")
    tmp.replace(out)
    return sections
