"""`touchstream report` in a real browser: Debian's headless Chromium opens the file offline.

Asserted: every chart drew (each chart's SVG is laid out with a size and its marks have boxes),
the page logs no error, and it requests nothing but itself. The lake is generated (thousands of
journeys); the command runs as users run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from analytics.report.sections import SECTIONS
from tests.browser import harness
from tests.unit.analytics.lakegen import journeys

ROOT = Path(__file__).resolve().parents[2]


def test_every_chart_of_the_report_draws_offline_without_errors(tmp_path: Path) -> None:
    lake = journeys(1500, seed=11).write(tmp_path / "lake")
    out = tmp_path / "report.html"
    env = dict(os.environ, TOUCHSTREAM_LAKE_PATH=str(lake), PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "apps.cli", "report", "--out", str(out), "--funnel", "page",
                           "--funnel", "Signed Up", "--funnel", "Order Completed"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    with harness.chromium() as browser:
        context = browser.new_context(offline=True)  # type: ignore[attr-defined]
        page = context.new_page()
        requested: list[str] = []
        problems: list[str] = []
        context.on("request", lambda request: requested.append(request.url))
        page.on("console", lambda msg: problems.append(msg.text) if msg.type in ("error", "warning")
                else None)
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        page.goto(out.as_uri())
        page.wait_for_load_state("load")
        charts = page.evaluate("""() => [...document.querySelectorAll('svg.chart')].map(svg => {
            const box = svg.getBoundingClientRect();
            const marks = [...svg.querySelectorAll('.mark')].map(m => m.getBBox());
            return {name: svg.dataset.chart, width: box.width, height: box.height, marks: marks.length,
                    drawn: marks.filter(b => b.width > 0 && b.height > 0).length};
        })""")
        unavailable = page.locator(".unavailable").count()
        context.close()
    assert [c["name"] for c in charts] == [build.__name__.strip("_") for build in SECTIONS]
    for chart in charts:
        assert chart["width"] > 300 and chart["height"] > 40, chart
        assert chart["drawn"] >= 2 and chart["drawn"] >= chart["marks"] // 2, chart
    assert unavailable == 0
    assert problems == []
    assert requested == [out.as_uri()]
