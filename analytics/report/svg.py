"""Charts as inline SVG text, drawn in Python: the report opens offline and runs no script.

Every chart is an ``<svg class="chart" data-chart=NAME>`` with a ``viewBox`` (it scales with the
page); every data mark (a bar, a cell, a segment) has the class ``mark`` and a ``<title>``
giving its label and value (the browser shows it on hover; the report's test counts marks).
Text is escaped; numbers are formatted by the caller's ``fmt``.

Why no chart library: the six charts are bars, stacked bars and heat grids, a few hundred lines
of SVG; a vendored script (Vega-Lite's is 800 KB, Chart.js 200 KB) would be most of the file and
a second language to review, and a chart drawn at build time needs no JavaScript to appear.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

WIDTH = 640
PALETTE = ("#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac", "#1f77b4", "#8c564b")
Fmt = Callable[[float], str]


def number(value: float) -> str:
    """1234 -> 1,234; 0.5 -> 0.5 (what a reader expects beside a bar)."""
    value = round(float(value), 2)
    if value.is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def percent(value: float) -> str:
    return f"{value:.1%}"


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _svg(name: str, height: float, body: list[str], title: str) -> str:
    return (f'<svg class="chart" data-chart="{escape(name)}" viewBox="0 0 {WIDTH} {height:.0f}" '
            f'role="img" aria-label="{escape(title)}">'
            + "".join(body) + "</svg>")


def _text(x: float, y: float, text: str, *, anchor: str = "start", cls: str = "label", size: int = 11) -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="{cls}" font-size="{size}">'
            f"{escape(text)}</text>")


def _rect(x: float, y: float, w: float, h: float, fill: str, tip: str, extra: str = "") -> str:
    return (f'<rect class="mark" x="{x:.1f}" y="{y:.1f}" width="{max(w, 0):.1f}" height="{max(h, 0):.1f}" '
            f'fill="{fill}"{extra}><title>{escape(tip)}</title></rect>')


def _legend(names: Sequence[str], y: float) -> tuple[list[str], float]:
    """Swatches in rows across the width; the body and the height it took."""
    body, x, row = [], 8.0, 0
    for i, name in enumerate(names):
        width = 22 + 7 * len(name)
        if x + width > WIDTH and x > 8:
            x, row = 8.0, row + 1
        top = y + row * 18
        body.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="12" height="12" fill="{color(i)}"/>')
        body.append(_text(x + 16, top + 10, name))
        x += width
    return body, (row + 1) * 18


Series = Sequence[tuple[str, Sequence[float]]]


def grouped_hbars(name: str, title: str, categories: Sequence[str], series: Series, fmt: Fmt = number) -> str:
    """Per category a group of horizontal bars, one per series (attribution: channels x models)."""
    label_w, bar_h, gap = 150, 7, 10
    top = 8.0
    legend, legend_h = _legend([s for s, _ in series], top)
    top += legend_h + 6
    peak = max([v for _, values in series for v in values] + [0.0]) or 1.0
    span = WIDTH - label_w - 70
    body = legend
    for c, category in enumerate(categories):
        y0 = top + c * (len(series) * bar_h + gap)
        body.append(_text(label_w - 6, y0 + len(series) * bar_h / 2 + 4, category, anchor="end"))
        for s, (series_name, values) in enumerate(series):
            value = values[c]
            y = y0 + s * bar_h
            body.append(_rect(label_w, y, span * value / peak, bar_h - 1, color(s),
                              f"{category}, {series_name}: {fmt(value)}"))
        best = max(values[c] for _, values in series)
        body.append(_text(label_w + span * best / peak + 4, y0 + len(series) * bar_h / 2 + 4, fmt(best),
                          cls="value"))
    height = top + len(categories) * (len(series) * bar_h + gap) + 4
    return _svg(name, height, body, title)


def hbars(name: str, title: str, labels: Sequence[str], values: Sequence[float], fmt: Fmt = number,
          notes: Sequence[str] | None = None) -> str:
    """One horizontal bar per label, its value (and an optional note) at its end."""
    label_w, bar_h = 170, 22
    peak = max([*values, 0.0]) or 1.0
    span = WIDTH - label_w - 150
    body = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 6 + i * (bar_h + 6)
        body.append(_text(label_w - 6, y + bar_h / 2 + 4, label, anchor="end"))
        body.append(_rect(label_w, y, span * value / peak, bar_h, color(0), f"{label}: {fmt(value)}"))
        note = f"{fmt(value)}{'  ' + notes[i] if notes else ''}"
        body.append(_text(label_w + span * value / peak + 6, y + bar_h / 2 + 4, note, cls="value"))
    return _svg(name, 12 + len(labels) * (bar_h + 6), body, title)


def stacked_bar(name: str, title: str, parts: Sequence[tuple[str, float]]) -> str:
    """One 100% bar of the parts' shares (activated, active but untouched, asleep)."""
    total = sum(v for _, v in parts) or 1.0
    body, x = [], 8.0
    span = WIDTH - 16
    for i, (label, value) in enumerate(parts):
        w = span * value / total
        body.append(_rect(x, 8, w, 34, color(i), f"{label}: {number(value)} ({percent(value / total)})"))
        if w > 50:
            body.append(_text(x + w / 2, 30, percent(value / total), anchor="middle", cls="inside"))
        x += w
    legend, legend_h = _legend([f"{label} {number(v)}" for label, v in parts], 52)
    return _svg(name, 56 + legend_h, body + legend, title)


def stacked_columns(name: str, title: str, columns: Sequence[str], series: Series, fmt: Fmt = number) -> str:
    """Columns (time buckets) stacked by series (trigger rules), labels every few columns."""
    legend, legend_h = _legend([s for s, _ in series], 6)
    top, plot_h, left = 12 + legend_h, 180.0, 44
    totals = [sum(values[c] for _, values in series) for c in range(len(columns))]
    peak = max([*totals, 0.0]) or 1.0
    width = (WIDTH - left - 8) / max(len(columns), 1)
    body = [*legend, _text(left - 4, top + 8, fmt(peak), anchor="end", cls="axis"),
            _text(left - 4, top + plot_h, "0", anchor="end", cls="axis"),
            f'<line x1="{left}" y1="{top + plot_h:.1f}" x2="{WIDTH - 8}" y2="{top + plot_h:.1f}" '
            'class="rule"/>']
    every = max(1, len(columns) // 8)
    for c, column in enumerate(columns):
        x, base = left + c * width, top + plot_h
        for s, (series_name, values) in enumerate(series):
            if values[c] <= 0:
                continue
            h = plot_h * values[c] / peak
            base -= h
            tip = f"{column}, {series_name}: {fmt(values[c])}"
            body.append(_rect(x + 1, base, width - 2, h, color(s), tip))
        if c % every == 0:
            body.append(_text(x + width / 2, top + plot_h + 14, column, anchor="middle", cls="axis", size=9))
    return _svg(name, top + plot_h + 22, body, title)


def heat_grid(name: str, title: str, columns: Sequence[str], rows: Sequence[str],
              cells: Sequence[Sequence[float | None]], texts: Sequence[Sequence[str]],
              names: Sequence[Sequence[str]] | None = None, fmt: Fmt = number) -> str:
    """A grid of cells shaded by value (None: an empty, unshaded cell), each with its text
    (retention: cohorts x weeks; RFM: FM x R with the segment's name)."""
    label_w, head_h = 86, 18
    cell_w = (WIDTH - label_w - 4) / max(len(columns), 1)
    cell_h = 34 if names else 20
    peak = max([v for row in cells for v in row if v is not None] + [0.0]) or 1.0
    body = [_text(label_w + (i + 0.5) * cell_w, 12, c, anchor="middle", cls="axis")
            for i, c in enumerate(columns)]
    for r, row_label in enumerate(rows):
        y = head_h + r * cell_h
        body.append(_text(label_w - 6, y + cell_h / 2 + 4, row_label, anchor="end", cls="axis"))
        for c, value in enumerate(cells[r]):
            x = label_w + c * cell_w
            if value is None:
                body.append(f'<rect x="{x + 1:.1f}" y="{y + 1:.1f}" width="{cell_w - 2:.1f}" '
                            f'height="{cell_h - 2:.1f}" class="empty"/>')
                continue
            shade = 0.12 + 0.88 * value / peak
            tip = f"{row_label}, {columns[c]}: {texts[r][c]}" + (f" ({names[r][c]})" if names else "")
            body.append(_rect(x + 1, y + 1, cell_w - 2, cell_h - 2, color(0), tip,
                              f' fill-opacity="{shade:.2f}"'))
            dark = "inside" if shade > 0.55 else "value"
            body.append(_text(x + cell_w / 2, y + (14 if names else cell_h / 2 + 4), texts[r][c],
                              anchor="middle", cls=dark, size=10))
            if names:
                body.append(_text(x + cell_w / 2, y + 27, names[r][c], anchor="middle", cls=dark, size=8))
    return _svg(name, head_h + len(rows) * cell_h + 4, body, title)
