"""The lake at an s3:// URL, on the real Kafka and a real S3 server (moto's, on a local port):
SIGKILLed mid-stream, every event lands in the bucket once; `touchstream sql`, `lake compact` and
an erasure read and rewrite it through pyarrow's S3 client."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.s3_server import ACCESS_KEY, REGION, SECRET_KEY, S3Server, s3_server
from connectors.lake.erase import erase_person
from connectors.lake.location import LakeLocation, with_endpoint
from connectors.lake.query import connect, run_query
from schemas.codec import EVENT, default_registry
from schemas.testing import T0, event_record
from streams.erased_letters import Person
from streams.topics import Topics
from tests.integration.lake_helpers import LakeProcess, lake_settings, produce, progress, wait_committed
from touchstream.settings import Settings

DAY = 86_400_000


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3 server of our own on a free port, and the AWS variables pyarrow reads set for this
    process and the CLI processes it starts."""
    with s3_server(tmp_path_factory.mktemp("s3") / "moto.log") as server, pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        env.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        env.setenv("AWS_DEFAULT_REGION", REGION)
        env.delenv("AWS_ENDPOINT_URL", raising=False)  # the setting names the endpoint
        yield server


def bucket_lake(s3: S3Server, url: str) -> LakeLocation:
    return LakeLocation.open(with_endpoint(url, s3.endpoint))


def s3_settings(settings: Settings, s3: S3Server, tmp_path: Path,
                **overrides: object) -> tuple[Settings, str]:
    """Settings of a lake in a new bucket (its spool in ``tmp_path``) over topics of its own."""
    url = f"s3://{s3.bucket()}/lake"
    config = lake_settings(settings, url, own_topics=True, lake_s3_endpoint=s3.endpoint,
                           lake_spool_path=str(tmp_path / "spool"), **overrides)
    return config, url


def test_sigkill_mid_stream_every_event_reaches_the_bucket_once(settings: Settings, s3: S3Server,
                                                                 tmp_path: Path) -> None:
    config, url = s3_settings(settings, s3, tmp_path, lake_roll_bytes=50_000, lake_roll_s=1,
                              lake_batch_size=300)
    group = f"{config.app_id}-lake"
    topic = Topics.of(config).resolved
    marker = f"s3-{uuid.uuid4().hex[:8]}-"
    encode = default_registry().encoder(EVENT)
    sent: list[str] = []

    def send(count: int) -> None:
        start = len(sent)
        chunk = []
        for n in range(start, start + count):
            mid = f"{marker}{n}"
            event = event_record("track", T0 + (n % 3) * DAY, message_id=mid, oneid=f"o-{n % 89}",
                                 event="Seen", properties={"n": n})
            chunk.append((f"o-{n % 89}".encode(), encode(event)))
            sent.append(mid)
        produce(config, topic, chunk)

    sink = LakeProcess(config, tmp_path / "lake.log")
    rng = random.Random(7)
    try:
        for _ in range(3):
            sink.start()
            before = progress(config, group)[0]
            send(500)
            deadline = time.monotonic() + 90
            while progress(config, group)[0] <= before:  # joined and committing
                assert time.monotonic() < deadline, (tmp_path / "lake.log").read_text()[-3000:]
                time.sleep(0.2)
            send(12_000)  # a backlog: the kill lands mid-batch (a segment, a roll, an upload)
            time.sleep(rng.uniform(0.3, 1.5))
            sink.kill()
        sink.start()
        wait_committed(config, group, timeout=180)
        assert sink.stop() == 0, (tmp_path / "lake.log").read_text()[-3000:]
    finally:
        if sink.proc is not None and sink.proc.poll() is None:
            sink.kill()

    lake = bucket_lake(s3, url)
    found = run_query(connect(lake), "SELECT message_id, _partition, _offset FROM events_raw").to_pylist()
    mine = Counter(r["message_id"] for r in found if r["message_id"].startswith(marker))
    assert [mid for mid, n in mine.items() if n > 1] == []  # none twice
    assert set(mine) == set(sent) and len(sent) == 37_500  # none lost
    assert max(Counter((r["_partition"], r["_offset"]) for r in found).values()) == 1
    assert list((tmp_path / "spool").glob("*/*.arrow")) == []  # a clean stop rolled everything
    folders = {f.path.rsplit("/", 2)[1] for f in lake.table_files("events")}
    assert folders == {"event_date=2023-11-14", "event_date=2023-11-15", "event_date=2023-11-16"}


def cli(config: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "apps.cli", *args], env=config.child_env(),
                          capture_output=True, text=True, timeout=180)


def test_sql_and_compaction_over_the_bucket(settings: Settings, s3: S3Server, tmp_path: Path) -> None:
    config, url = s3_settings(settings, s3, tmp_path, lake_roll_bytes=1, lake_batch_size=40)  # small files
    m = uuid.uuid4().hex[:8]
    encode = default_registry().encoder(EVENT)
    produce(config, Topics.of(config).resolved, [
        (f"p{i % 5}".encode(), encode(event_record("track", T0 + i, message_id=f"{m}-{i}", oneid=f"o-{i % 5}",
                                                   event="Order Completed", properties={"revenue": i})))
        for i in range(300)])
    sink = LakeProcess(config, tmp_path / "lake.log").start()
    try:
        wait_committed(config, f"{config.app_id}-lake")
    finally:
        assert sink.stop() == 0, (tmp_path / "lake.log").read_text()[-3000:]
    query = ("SELECT oneid, count(*) AS orders, "
             "CAST(sum(CAST(json_extract(properties, '$.revenue') AS INT)) AS BIGINT) AS revenue "
             "FROM events GROUP BY oneid ORDER BY oneid")
    expected = [{"oneid": f"o-{k}", "orders": 60, "revenue": sum(range(k, 300, 5))} for k in range(5)]

    before = cli(config, "sql", query, "--format", "json")
    assert before.returncode == 0, before.stderr
    assert [json.loads(line) for line in before.stdout.splitlines()] == expected
    files = len(bucket_lake(s3, url).table_files("events"))
    assert files > 5

    compacted = cli(config, "lake", "compact", "--small-mb", "64")
    assert compacted.returncode == 0, compacted.stderr
    done = re.match(r"(\d+) small file\(s\) merged into (\d+),", compacted.stdout)
    assert done is not None, compacted.stdout
    merged, written = int(done[1]), int(done[2])
    assert merged > 1 and len(bucket_lake(s3, url).table_files("events")) == files - merged + written
    after = cli(config, "sql", query, "--format", "json")
    assert [json.loads(line) for line in after.stdout.splitlines()] == expected

    bad = cli(config, "sql", "SELECT nope FROM events")
    assert bad.returncode != 0 and "nope" in bad.stderr and "Traceback" not in bad.stderr

    erased = erase_person(bucket_lake(s3, url), Person(frozenset({"o-3"})), spool=tmp_path / "spool")
    assert erased.rows_removed == {"events": 60}
    left = cli(config, "sql", query, "--format", "json")
    remaining = [e for e in expected if e["oneid"] != "o-3"]
    assert [json.loads(line) for line in left.stdout.splitlines()] == remaining
