"""The report's HTML: every section drawn beside its numbers, nothing external, text escaped.

(It is rendered in a real browser by tests/integration/test_report_browser.py.)
"""

from __future__ import annotations

import re
from collections.abc import Callable

import duckdb
import pytest

from analytics.funnels import funnel
from analytics.report import ReportOptions, build_report
from analytics.report.sections import SECTIONS, build_sections
from tests.unit.analytics.lakegen import T0, LakeWriter, journeys

Open = Callable[[LakeWriter], duckdb.DuckDBPyConnection]
OPTIONS = ReportOptions(funnel_steps=("page", "Signed Up", "Order Completed"),
                        thresholds={"lead_warm": 30.0, "mql_reached": 60.0}, as_of_ms=T0 + 90 * 86_400_000)
EXTERNAL = re.compile(r"(?i)https?:|src=|url\(|@import|<script|<link|<iframe|<img")


@pytest.fixture(scope="module")
def data() -> LakeWriter:
    return journeys(400, seed=3)


def sections_of(html: str) -> dict[str, str]:
    return dict(re.findall(r'<section id="[^"]+" data-section="([^"]+)">(.*?)</section>', html, re.S))


def test_every_section_has_a_chart_with_marks_and_its_numbers(open_lake: Open, data: LakeWriter) -> None:
    html = build_report(open_lake(data), OPTIONS)
    found = sections_of(html)
    assert list(found) == [build.__name__.strip("_") for build in SECTIONS]
    for key, body in found.items():
        assert "Not available" not in body, key
        chart = re.search(r'<svg class="chart" data-chart="([^"]+)"(.*?)</svg>', body, re.S)
        assert chart is not None and chart.group(1) == key
        assert chart.group(2).count('class="mark"') >= 3, key
        assert "<table>" in body and body.count("<tr>") >= 2, key
    assert EXTERNAL.search(html) is None


def test_the_numbers_are_the_questions_answers(open_lake: Open, data: LakeWriter) -> None:
    con = open_lake(data)
    body = sections_of(build_report(con, OPTIONS))["funnel"]
    for step in funnel(con, list(OPTIONS.funnel_steps), window="7d").overall.steps:
        assert f"<td>{step.people:,}</td>" in body
        assert f"{step.label}: {step.people:,}</title>" in body  # the bar's own tooltip


def test_an_empty_lake_says_why_each_section_is_not_available(open_lake: Open) -> None:
    sections = build_sections(open_lake(LakeWriter()), OPTIONS)
    reasons = {s.key: s.unavailable for s in sections}
    assert reasons == {"attribution": "no conversion in the lake yet", "rfm": "no order in the lake yet",
                       "funnel": "nobody did 'page' yet", "retention": "no activity in the lake yet",
                       "triggers": "no trigger in the lake yet",
                       "activation": "the lake has no profiles snapshot: run `touchstream lake snapshot`",
                       "scores": "no known lead in the lake yet"}
    html = build_report(open_lake(LakeWriter()), OPTIONS)
    assert html.count("Not available: ") == len(SECTIONS)
    assert "<svg" not in html


def test_names_from_the_data_are_escaped(open_lake: Open) -> None:
    lake = LakeWriter()
    lake.page("ann", "/", T0)
    lake.track("ann", "<b>Signed</b>", T0 + 1)
    lake.trigger("ann", '<script>alert("x")</script>', T0)
    lake.profile("ann", T0 + 2, as_of=T0 + 1, last_interaction=T0 + 1, tags=['"><svg onload=x>'])
    html = build_report(open_lake(lake), ReportOptions(funnel_steps=("page", "<b>Signed</b>")))
    assert "<script" not in html and "<b>" not in html and "<svg onload" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html
    assert "&lt;b&gt;Signed&lt;/b&gt;" in html
