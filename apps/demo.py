"""``touchstream demo``: the main job end to end on the local stack, with a summary.

Starts a collector and a worker, sends multi-channel sample events through the Segment HTTP API
with a fresh write key, waits until every one has come out of the pipeline resolved to a
person, fills the lake (`lake run` until idle) and runs `verify` (live profiles against the
lake's history), stops both and reports what happened, with the lake's answers: the sample's
orders by channel under every attribution model and the RFM segments.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from confluent_kafka import Consumer, KafkaException, TopicPartition

from apps import factory
from apps.procs import wait_http
from connectors.samples import sample_events
from profiles.store import ProfileStore
from schemas.codec import default_registry
from streams.clients import client_config
from streams.topics import Topics, create_topics
from touchstream.errors import TouchstreamError
from touchstream.settings import Settings


@dataclass
class DemoSummary:
    sent: int
    accepted: int
    resolved: int
    people: int
    oneids: int
    seconds: float
    triggers: dict[str, int]
    example: dict | None
    verified: str = "not run"  # verify's summary line: live profiles against the lake's history
    verified_ok: bool = True
    report: str = "not written"  # where `touchstream report` wrote the lake's charts
    analytics: str = ""  # attribution of the sample's orders and the RFM segments, from the lake

    def _example(self) -> str:
        if not self.example:
            return "-"
        p = self.example
        return (f"{p['oneid']} tier={p.get('tier')} score={p.get('score')} tags={p.get('tags')} "
                f"orders_90d={p['aggregates'].get('orders_90d')} "
                f"revenue_365d={p['aggregates'].get('revenue_365d')}")

    @property
    def ok(self) -> bool:
        complete = self.resolved == self.sent == self.accepted and self.oneids == self.people
        return complete and self.verified_ok

    def render(self) -> str:
        rate = self.resolved / self.seconds if self.seconds else 0.0
        return "\n".join([
            "Touchstream demo",
            f"  events sent (Segment HTTP API) : {self.sent}",
            f"  accepted by the collector      : {self.accepted}",
            f"  resolved to a OneID            : {self.resolved}",
            f"  people in the sample           : {self.people}",
            f"  OneIDs after merges            : {self.oneids}",
            f"  triggers fired, by rule        : {self.triggers or 'none'}",
            f"  one profile                    : {self._example()}",
            f"  live equals history (verify)   : {self.verified}",
            f"  marketing report               : {self.report}",
            f"  wall time                      : {self.seconds:.1f}s ({rate:,.0f} events/s incl. start-up)",
            f"  result                         : {'OK' if self.ok else 'INCOMPLETE'}",
            *([self.analytics] if self.analytics else []),
        ])


def _end_offsets(consumer: Consumer, topic: str, timeout: float = 30.0) -> list[TopicPartition]:
    """The high watermark of every partition; retried while a new topic's leaders settle."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            meta = consumer.list_topics(topic, timeout=10)
            parts = []
            for p in meta.topics[topic].partitions:
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                parts.append(TopicPartition(topic, p, high))
            return parts
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _post_batch(base: str, key: str, batch: list[dict]) -> dict:
    request = urllib.request.Request(
        base + "/v1/batch", data=json.dumps({"batch": batch}).encode(), method="POST",
        headers={"Content-Type": "application/json",
                 "Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _poll_value(consumer: Consumer, timeout_s: float) -> bytes | None:
    """The next record's bytes, or None when nothing (or only an error or a tombstone) came."""
    msg = consumer.poll(timeout_s)
    if msg is None or msg.error():
        return None
    return msg.value()


def _triggers_for(consumer: Consumer, oneids: set[str], settle_s: float) -> dict[str, int]:
    """Triggers fired for these people, by rule (reads until the topic is quiet for settle_s)."""
    decode = default_registry().decoder("trigger")
    counts: dict[str, int] = {}
    quiet_until = time.monotonic() + settle_s
    while time.monotonic() < quiet_until:
        value = _poll_value(consumer, 0.2)
        if value is None:
            continue
        trigger = decode(value)
        if trigger["oneid"] in oneids:
            counts[trigger["rule"]] = counts.get(trigger["rule"], 0) + 1
            quiet_until = time.monotonic() + settle_s
    return dict(sorted(counts.items()))


def _caught_up(settings: Settings, consumer: Consumer, group_id: str, topics: list[str],
               timeout: float = 120.0) -> bool:
    """Whether ``group_id`` committed every record of ``topics`` within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ends = [tp for topic in topics for tp in _end_offsets(consumer, topic)]
        group = Consumer(client_config(settings.broker, **{"group.id": group_id,
                                                           "enable.auto.commit": False}))
        try:
            done = group.committed([TopicPartition(t.topic, t.partition) for t in ends], timeout=10)
        finally:
            group.close()
        if all(max(c.offset, 0) >= e.offset for c, e in zip(done, ends, strict=True)):
            return True
        time.sleep(0.5)
    return False


def _verify(settings: Settings, consumer: Consumer, store: ProfileStore, log_dir: Path) -> tuple[bool, str]:
    """Fill the lake (`lake run` until it has every record), then `verify`: live against history."""
    from analytics.history import verify
    from connectors.lake.query import connect
    from connectors.lake.sink import lake_topics

    topics = Topics.of(settings)
    if not _caught_up(settings, consumer, settings.app_id, [topics.resolved, topics.merges]):
        return False, "the worker did not apply every event in time"
    env = {**settings.child_env(), "TOUCHSTREAM_LAKE_METRICS_PORT": "0"}  # a running sink may hold its port
    config = factory.lake_config(settings)
    with open(log_dir / "demo-lake.log", "ab") as out:
        lake = subprocess.Popen([sys.executable, "-m", "apps.cli", "lake", "run"], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        filled = _caught_up(settings, consumer, config.group, list(lake_topics(settings.topic_prefix)))
    finally:
        lake.send_signal(signal.SIGTERM)  # a clean stop rolls every segment into Parquet
        try:
            code = lake.wait(120)
        except subprocess.TimeoutExpired:
            lake.kill()
            code = lake.wait()
    if not filled or code != 0:
        return False, f"the lake sink did not fill the lake (see {log_dir / 'demo-lake.log'})"
    con = connect(config.path)
    report = verify(con, store.ruleset.current(), store.get_profiles, time.time_ns() // 1_000_000,
                    skew_ms=settings.event_time_skew_s * 1000)
    return report.ok, report.summary()


def _report(settings: Settings, store: ProfileStore, log_dir: Path) -> str:
    """Snapshot the profiles into the lake, then write the report (what `touchstream lake
    snapshot` and `touchstream report` do); its path and how many sections drew."""
    from analytics.predictiveness import score_thresholds
    from analytics.report import ReportOptions, write_report
    from connectors.lake.query import connect, survivors
    from connectors.lake.snapshot import snapshot_profiles

    root = factory.lake_config(settings).path
    out = log_dir / "demo-report.html"
    try:
        snapshot_profiles(root, survivors(connect(root)), store.get_profile)
        options = ReportOptions(thresholds=score_thresholds(store.ruleset.current()))
        sections = write_report(connect(root), out, options, subtitle="touchstream demo")
    except TouchstreamError as exc:
        return f"failed: {exc}"
    return f"{out} ({sum(s.unavailable is None for s in sections)} of {len(sections)} sections drawn)"


def _analytics(settings: Settings, since_ms: int) -> str:
    """The lake's answers for the sample: its orders by channel under every attribution model,
    and the RFM segments of the lake's customers."""
    from analytics.attribution import AttributionOptions, attribution, measure, rounded
    from analytics.rfm import rfm, segment_counts
    from analytics.touches import Conversion
    from connectors.lake.query import connect, render_table

    con = connect(factory.lake_config(settings).path)
    credits = attribution(con, AttributionOptions(Conversion(since_ms=since_ms)))
    segments = segment_counts(rfm(con)).select(["segment", "r", "fm", "customers", "revenue"])
    return "\n".join(["", "Orders by channel, per attribution model (conversions):",
                      render_table(rounded(measure(credits, "conversions"))),
                      "Order revenue by channel, per attribution model:",
                      render_table(rounded(measure(credits, "revenue"))),
                      "RFM segments (customers in the lake):", render_table(rounded(segments))])


def run_demo(settings: Settings, *, events: int, timeout: float, people: int = 50,
             log_dir: Path = Path(".local")) -> DemoSummary:
    topics = Topics.of(settings)
    create_topics(settings)
    client = factory.redis_client(settings)
    # the demo sends its whole history at once: its own key is not held to the default rate
    key = factory.key_store(settings, client).create("write", "demo", rate=1_000_000, burst=1_000_000)
    run_id = uuid.uuid4().hex[:12]
    consumer = Consumer(client_config(settings.broker, **{"group.id": f"demo-{run_id}",
                                                          "enable.auto.commit": False}))
    consumer.assign(_end_offsets(consumer, topics.resolved))
    trigger_consumer = Consumer(client_config(settings.broker, **{"group.id": f"demo-{run_id}-t",
                                                                  "enable.auto.commit": False}))
    trigger_consumer.assign(_end_offsets(trigger_consumer, topics.triggers))

    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    env = settings.child_env()
    with open(log_dir / "demo-worker.log", "ab") as wlog, open(log_dir / "demo-serve.log", "ab") as slog:
        worker = subprocess.Popen([sys.executable, "-m", "apps.cli", "worker"], env=env,
                                  stdout=wlog, stderr=subprocess.STDOUT)
        server = subprocess.Popen([sys.executable, "-m", "apps.cli", "serve"], env=env,
                                  stdout=slog, stderr=subprocess.STDOUT)
    try:
        base = f"http://{settings.http_host}:{settings.http_port}"
        wait_http(base + "/healthz", server)
        sample = list(sample_events(events, people=people, run_id=run_id))
        accepted = 0
        for start in range(0, len(sample), 100):
            accepted += _post_batch(base, key, sample[start:start + 100])["accepted"]

        decode = default_registry().decoder("event")
        oneids: set[str] = set()
        resolved = 0
        deadline = time.monotonic() + timeout
        while resolved < accepted and time.monotonic() < deadline:
            value = _poll_value(consumer, 0.5)
            if value is None:
                continue
            record = decode(value)
            if record["message_id"].startswith(run_id):
                resolved += 1
                oneids.add(record["oneid"])
        graph = factory.identity_graph(settings, client)
        survivors = {graph.resolve_alias(o) for o in oneids}
        seconds = time.monotonic() - started
        fired = _triggers_for(trigger_consumer, survivors, settle_s=3.0)
        store = factory.profile_store(settings, client)
        profiles = [p for p in (store.get_profile(o) for o in sorted(survivors)) if p]
        example = max(profiles, key=lambda p: p["aggregates"].get("revenue_365d") or 0, default=None)
        summary = DemoSummary(len(sample), accepted, resolved, people, len(survivors), seconds, fired,
                              example)
        summary.verified_ok, summary.verified = _verify(settings, consumer, store, log_dir)
        summary.report = _report(settings, store, log_dir)
        if summary.verified_ok:  # the lake holds the sample
            first = datetime.fromisoformat(sample[0]["timestamp"]) if sample else datetime.now(UTC)
            summary.analytics = _analytics(settings, int(first.timestamp() * 1000))
        return summary
    finally:
        consumer.close()
        trigger_consumer.close()
        for proc in (server, worker):
            proc.send_signal(signal.SIGTERM)
        for proc in (server, worker):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
