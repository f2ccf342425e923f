"""The report as one HTML file: inline CSS and SVG, no script, nothing fetched from anywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape
from typing import Any

import pyarrow as pa

from analytics.report.sections import Section

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "PingFang SC", "Microsoft YaHei", sans-serif;
       color: #222; margin: 0 auto; max-width: 1280px; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 2px; } h2 { font-size: 17px; margin: 0 0 4px; }
header p, .note { color: #555; margin: 2px 0 10px; }
nav a { margin-right: 14px; color: #4e79a7; }
section { border-top: 1px solid #ddd; padding: 18px 0 8px; }
.pair { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; }
figure { margin: 0; flex: 0 1 640px; min-width: 320px; }
.numbers { flex: 1 1 420px; min-width: 0; overflow-x: auto; }
table { border-collapse: collapse; font-size: 12.5px; font-variant-numeric: tabular-nums; }
th, td { padding: 3px 8px; border-bottom: 1px solid #eee; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f6f6f6; font-weight: 600; }
.unavailable { color: #a33; font-style: italic; }
svg.chart { width: 100%; height: auto; }
svg .label, svg .value { fill: #333; } svg .axis { fill: #666; } svg .rule { stroke: #bbb; }
svg .inside { fill: #fff; } svg rect.empty { fill: #f4f4f4; }
"""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1 else f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, int):
        return f"{value:,}"
    return escape(str(value))


def html_table(table: pa.Table) -> str:
    head = "".join(f"<th>{escape(name)}</th>" for name in table.column_names)
    rows = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row.values()) + "</tr>"
                   for row in table.to_pylist())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _section(section: Section) -> str:
    parts = [f'<section id="{escape(section.key)}" data-section="{escape(section.key)}">',
             f"<h2>{escape(section.title)}</h2>"]
    if section.note:
        parts.append(f'<p class="note">{escape(section.note)}</p>')
    if section.unavailable is not None:
        parts.append(f'<p class="unavailable">Not available: {escape(section.unavailable)}</p>')
    else:
        parts.append('<div class="pair">')
        if section.chart:
            parts.append(f"<figure>{section.chart}</figure>")
        if section.table is not None:
            parts.append(f'<div class="numbers">{html_table(section.table)}</div>')
        parts.append("</div>")
    parts.append("</section>")
    return "".join(parts)


def render(title: str, sections: list[Section], subtitle: str, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    nav = "".join(f'<a href="#{escape(s.key)}">{escape(s.title)}</a>' for s in sections)
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>",
        f"<header><h1>{escape(title)}</h1><p>{escape(subtitle)} · generated "
        f"{now.strftime('%Y-%m-%d %H:%M UTC')}</p><nav>{nav}</nav></header>",
        *(_section(s) for s in sections),
        "</body></html>",
    ])
