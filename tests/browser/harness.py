"""A web site on another origin and a headless Chromium, for end-to-end tests of the browser SDKs.

The site serves this folder: its ``pages/`` and the unmodified SDK bundles in ``node_modules/``
(``npm ci`` here; `make test` does it). Chromium is Debian's (`make test` installs it), driven by
Playwright's Python client: no browser is downloaded. Anything missing fails the test, never skips it.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SEGMENT_UMD = "/node_modules/@segment/analytics-next/dist/umd/index.js"
RUDDER_UMD = "/node_modules/@rudderstack/analytics-js/dist/npm/modern/bundled/umd/index.js"


def require_sdks() -> None:
    """Fail (not skip) when the npm packages are not installed."""
    for bundle in (SEGMENT_UMD, RUDDER_UMD):
        if not (HERE / bundle.lstrip("/")).is_file():
            pytest.fail(f"{bundle} is missing: run `npm ci` in tests/browser (make test does)", pytrace=False)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def site() -> Iterator[int]:
    """This folder served on 127.0.0.1 (and localhost) at a free port; yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(HERE)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def chromium() -> Iterator[object]:
    """Debian's Chromium, headless, through Playwright (a fresh browser; pages open contexts)."""
    from playwright.sync_api import Error, sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (make test does)", pytrace=False)
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Error as exc:
            pytest.fail(f"Chromium did not start: {exc}", pytrace=False)
        try:
            yield browser
        finally:
            browser.close()
