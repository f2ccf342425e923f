"""The real browser SDKs in headless Chromium, on a site of another origin, against the collector alone.

The site (tests/browser) serves plain pages that load the unmodified npm bundles of analytics.js
(``@segment/analytics-next``) and RudderStack's JavaScript SDK v3; the collector serves the settings
each SDK fetches when it loads. Asserted: events land on the raw topic with the right identifiers
and resolve to one OneID, nothing is fetched from anywhere but the site and the collector, a page
on a site the key does not allow is refused and counted, a key over its rate still delivers through
the SDK's own retry, and the documented Page Left beacon arrives when a tab is closed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from schemas.codec import default_registry
from schemas.exceptions import DecodeError
from streams.topics import Topics
from tests.browser import harness
from tests.integration.conftest import TopicReader, api, cli, metric, wait_resolved
from touchstream.settings import Settings

PAGE_LEFT_JS = (harness.HERE / "pages" / "page-left.js").read_text()


class RawTail:
    """The raw topic from now on (other tests' deliberate garbage skipped)."""

    def __init__(self, settings: Settings) -> None:
        topic = Topics.of(settings).raw
        self.consumer = Consumer({"bootstrap.servers": settings.broker, "enable.auto.commit": False,
                                  "group.id": f"tail-{uuid.uuid4().hex}"})
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        end = self.consumer.get_watermark_offsets
        self.consumer.assign([TopicPartition(topic, p, end(TopicPartition(topic, p), timeout=10)[1])
                              for p in partitions])
        self.registry = default_registry()
        self.records: list[dict] = []

    def until(self, done: Callable[[list[dict]], bool], timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while not done(self.records) and time.monotonic() < deadline:
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            try:
                self.records.append(self.registry.decode(msg.value())[1])
            except DecodeError:
                continue
        return self.records

    def of(self, anonymous_id: str) -> list[dict]:
        return [r for r in self.records if r["anonymous_id"] == anonymous_id]

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture(scope="module")
def site_port() -> Iterator[int]:
    harness.require_sdks()
    with harness.site() as port:
        yield port


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with harness.chromium() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def browser_key(settings: Settings, site_port: int) -> str:
    """A browser key for the site at 127.0.0.1 (the same pages at localhost are another origin)."""
    return cli(settings, "keys", "create", "--scope", "write", "--name", "website", "--origin",
               f"http://127.0.0.1:{site_port}", "--rate", "100000", "--burst", "100000").strip()


@pytest.fixture
def raw(settings: Settings) -> Iterator[RawTail]:
    tail = RawTail(settings)
    yield tail
    tail.close()


def ids(record: dict) -> set[tuple[str, str]]:
    return {(i["type"], i["value"]) for i in record["identifiers"]}


def refused(record: dict) -> set[tuple[str, str, str]]:
    """Identifiers kept on the record but not used: a browser key asserts no login id by default."""
    return {(i["type"], i["value"], i["reason"]) for i in record["invalid_identifiers"]}


def open_page(browser: object, url: str) -> tuple[object, object, list[str]]:
    """A new tab (own cookies and storage) on ``url``; the list fills with every URL it requests."""
    context = browser.new_context()  # type: ignore[attr-defined]
    page = context.new_page()
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    page.goto(url)
    return context, page, requested


ANALYTICS_JS = """async ({collector, key, anon, user}) => {
  // as a site would: cdnURL points analytics.js at the collector for its settings
  const analytics = AnalyticsNext.AnalyticsBrowser.load({writeKey: key, cdnURL: collector});
  await analytics.setAnonymousId(anon);
  await analytics.page('Pricing', {path: '/pricing'});
  await analytics.track('Viewed Pricing', {plan: 'pro'});
  await analytics.identify(user, {email: `Ann.${user}@Example.CN`});  // one visitor per test
  const [instance] = await analytics;
  window.ids = () => ({anonymousId: instance.user().anonymousId(), userId: instance.user().id()});
}"""


def test_analytics_js_delivers_page_track_identify_resolved_to_one_oneid(
        collector, settings, worker, site_port, browser, browser_key, raw):
    anon, user = f"anon-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
    context, page, requested = open_page(browser, f"http://127.0.0.1:{site_port}/pages/segment.html")
    reader = TopicReader(settings, Topics.of(settings).resolved, "event")
    try:
        page.evaluate(ANALYTICS_JS, {"collector": collector, "key": browser_key, "anon": anon, "user": user})
        raw.until(lambda _: len(raw.of(anon)) >= 3)
        records = {r["type"]: r for r in raw.of(anon)}
        assert set(records) == {"page", "track", "identify"}, records
        assert records["page"]["name"] == "Pricing" and records["track"]["event"] == "Viewed Pricing"
        assert ("email", f"ann.{user}@example.cn") in ids(records["identify"])
        assert ("user_id", user, "not_assertable") in refused(records["identify"])
        assert all(("anonymous_id", anon) in ids(r) and r["source"] == "website" for r in records.values())
        resolved = wait_resolved(reader, {r["message_id"] for r in records.values()})
        assert len({r["oneid"] for r in resolved.values()}) == 1, resolved
        elsewhere = {u for u in requested if not u.startswith((collector, f"http://127.0.0.1:{site_port}/"))}
        assert not elsewhere, f"the page fetched from outside the site and the collector: {elsewhere}"
        assert any(u.startswith(f"{collector}/v1/projects/{browser_key}/settings") for u in requested)
        assert any(u == f"{collector}/v1/t" for u in requested)  # analytics.js's short paths
    finally:
        reader.close()
        context.close()


def test_a_site_the_key_does_not_allow_is_refused_and_counted(collector, site_port, browser, browser_key,
                                                              raw):
    anon = f"anon-{uuid.uuid4().hex[:8]}"
    refused = metric(collector, "touchstream_origins_refused_total", source="website")
    # the same page from localhost: another origin, not on the key's list
    context, page, _ = open_page(browser, f"http://localhost:{site_port}/pages/segment.html")
    try:
        outcome = page.evaluate("""async ({collector, key, anon}) => {
          const analytics = AnalyticsNext.AnalyticsBrowser.load({writeKey: key, cdnURL: collector});
          analytics.setAnonymousId(anon);
          analytics.track('Stolen Key');
          try { await analytics; return 'loaded'; } catch (e) { return 'refused'; }
        }""", {"collector": collector, "key": browser_key, "anon": anon})
        beacon = page.evaluate("""({collector, key, anon}) => navigator.sendBeacon(collector + '/v1/t',
            JSON.stringify({writeKey: key, anonymousId: anon, event: 'Stolen Key'}))""",
                               {"collector": collector, "key": browser_key, "anon": anon})
        assert outcome == "refused" and beacon is True
        deadline = time.monotonic() + 10
        while metric(collector, "touchstream_origins_refused_total", source="website") < refused + 2:
            assert time.monotonic() < deadline, "the refusals were not counted"
            time.sleep(0.2)
        raw.until(lambda _: False, timeout=2)
        assert raw.of(anon) == []
    finally:
        context.close()


def test_over_its_rate_the_key_still_delivers_through_the_sdks_retry(
        collector, settings, site_port, browser, raw):
    key = cli(settings, "keys", "create", "--scope", "write", "--name", "slow-site", "--origin",
              f"http://127.0.0.1:{site_port}", "--rate", "2", "--burst", "2").strip()
    anon = f"anon-{uuid.uuid4().hex[:8]}"
    limited = metric(collector, "touchstream_rate_limited_total", source="slow-site")
    context, page, _ = open_page(browser, f"http://127.0.0.1:{site_port}/pages/segment.html")
    try:
        page.evaluate("""async ({collector, key, anon}) => {
          const analytics = AnalyticsNext.AnalyticsBrowser.load({writeKey: key, cdnURL: collector});
          analytics.setAnonymousId(anon);
          for (let i = 0; i < 6; i++) analytics.track('Clicked', {i});
        }""", {"collector": collector, "key": key, "anon": anon})
        events = raw.until(lambda _: len(raw.of(anon)) >= 6, timeout=45)
        assert sorted(json_i(r) for r in events if r["anonymous_id"] == anon) == list(range(6))
        assert metric(collector, "touchstream_rate_limited_total", source="slow-site") > limited
    finally:
        context.close()


def json_i(record: dict) -> int:
    import json

    return json.loads(record["properties"])["i"]


def open_views(collector: str, read_key: str, oneid: str) -> int | None:
    """The profile's open page views; None while the profile stage has not reached it yet."""
    status, body = api(collector, "GET", f"/v1/profiles/{oneid}", read_key)
    assert status in (200, 404), body
    return body.get("profile", {}).get("open_views")


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def test_page_left_from_a_closed_tab_closes_the_pricing_view(
        collector, settings, worker, read_key, site_port, browser, browser_key, raw):
    anon, user = f"anon-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
    context, page, _ = open_page(browser, f"http://127.0.0.1:{site_port}/pages/segment.html")
    reader = TopicReader(settings, Topics.of(settings).resolved, "event")
    try:
        page.evaluate(ANALYTICS_JS, {"collector": collector, "key": browser_key, "anon": anon, "user": user})
        # pages/page-left.js, the README's snippet, is on the page as a site would include it
        page.evaluate("([collector, key]) => touchstreamPageLeft(collector, key, window.ids)",
                      [collector, browser_key])
        raw.until(lambda _: len(raw.of(anon)) >= 3)
        [viewed] = [r for r in raw.of(anon) if r["type"] == "page"]
        oneid = wait_resolved(reader, {viewed["message_id"]})[viewed["message_id"]]["oneid"]
        wait_for(lambda: open_views(collector, read_key, oneid) == 1, 30, "the pricing view never opened")

        page.close(run_before_unload=True)
        raw.until(lambda _: any(r["event"] == "Page Left" for r in raw.of(anon)))
        left = [r for r in raw.of(anon) if r["event"] == "Page Left"]
        assert len(left) == 1, raw.of(anon)
        assert ("anonymous_id", anon) in ids(left[0]) and left[0]["type"] == "track"
        # closed by the visitor's own browser, seconds after opening: far before the 180 s the clock waits
        wait_for(lambda: open_views(collector, read_key, oneid) == 0, 30, "Page Left did not close the view")
    finally:
        reader.close()
        context.close()


RUDDERSTACK_JS = """async ({collector, key, anon, user, beacon}) => {
  // as the README shows: the collector is the data plane and the config URL
  const rudder = new rudderanalytics.RudderAnalytics();
  const ready = new Promise(resolve => rudder.ready(resolve));
  rudder.load(key, collector, {configUrl: collector, useBeacon: beacon,
                               beaconQueueOptions: {flushQueueInterval: 200}});
  await ready;
  rudder.setAnonymousId(anon);
  rudder.page('Pricing', {path: '/pricing'});
  rudder.track('Viewed Pricing', {plan: 'pro'});
  rudder.identify(user, {email: `Bo.${user}@Example.CN`});
}"""


@pytest.mark.parametrize("beacon", [False, True], ids=["xhr", "beacon"])
def test_rudderstack_delivers_page_track_identify_resolved_to_one_oneid(
        collector, settings, worker, site_port, browser, browser_key, raw, beacon):
    anon, user = f"anon-{uuid.uuid4().hex[:8]}", f"user-{uuid.uuid4().hex[:8]}"
    context, page, requested = open_page(browser, f"http://127.0.0.1:{site_port}/pages/rudderstack.html")
    reader = TopicReader(settings, Topics.of(settings).resolved, "event")
    try:
        page.evaluate(RUDDERSTACK_JS, {"collector": collector, "key": browser_key, "anon": anon, "user": user,
                                       "beacon": beacon})
        raw.until(lambda _: len(raw.of(anon)) >= 3)
        records = {r["type"]: r for r in raw.of(anon)}
        assert set(records) == {"page", "track", "identify"}, records
        assert records["track"]["event"] == "Viewed Pricing"
        assert ("email", f"bo.{user}@example.cn") in ids(records["identify"])
        assert ("user_id", user, "not_assertable") in refused(records["identify"])
        assert all(r["source"] == "website" for r in records.values())
        resolved = wait_resolved(reader, {r["message_id"] for r in records.values()})
        assert len({r["oneid"] for r in resolved.values()}) == 1, resolved
        elsewhere = {u for u in requested if not u.startswith((collector, f"http://127.0.0.1:{site_port}/"))}
        assert not elsewhere, f"the page fetched from outside the site and the collector: {elsewhere}"
        assert any(u.startswith(f"{collector}/sourceConfig/") for u in requested)
        posts = [u for u in requested if u.startswith(collector + "/v1/")]
        if beacon:  # Playwright does not report beacons: the events came by none of the XHR routes
            assert posts == [], posts
        else:
            assert collector + "/v1/track" in posts, posts
    finally:
        reader.close()
        context.close()


def test_the_page_left_snippet_is_the_one_in_the_readme():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert PAGE_LEFT_JS.strip() in readme
