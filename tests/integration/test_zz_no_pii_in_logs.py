"""No email address or phone number reaches a log (named zz_: it runs after the other integration
tests of the session and reads every log their collector, worker and sink processes wrote).

The tests send thousands of emails and Chinese mobile numbers through the collector, the
importers, the SDKs and the pipeline; any of them in a log is a leak of personal data.
"""

from __future__ import annotations

import re

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
#: logs of other programs the tests run (Prometheus prints its packager's address at start)
OTHER_PROGRAMS = {"prometheus.log"}
CN_MOBILE = re.compile(r"(?<![\d.])(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}(?![\d.])")


def leaks(text: str) -> list[str]:
    return EMAIL.findall(text) + CN_MOBILE.findall(text)


def test_the_patterns_find_what_they_look_for():
    line = "resolved a@qq.com, 139 1234 5678 and +8613912345678 at 1764668400000 (offset 13912345)"
    assert leaks(line) == ["a@qq.com", "139 1234 5678", "+8613912345678"]


def test_no_log_of_this_session_holds_an_email_or_a_phone(tmp_path_factory, collector, worker):
    logs = sorted(p for p in tmp_path_factory.getbasetemp().rglob("*.log") if p.name not in OTHER_PROGRAMS)
    assert any(p.name == "serve.log" for p in logs) and any(p.name == "worker.log" for p in logs)
    texts = {str(p): p.read_text(errors="replace") for p in logs}
    found = {path: hits[:5] for path, text in texts.items() if (hits := leaks(text))}
    assert found == {}
    # the server's handler options took (an unknown one once made aiohttp drop them all)
    assert not [path for path, text in texts.items() if "falling back to filtered kwargs" in text]
