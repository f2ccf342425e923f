"""The lake sink on the real Kafka: SIGKILLed mid-stream again and again, every record lands once."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

from schemas.codec import EVENT, default_registry
from schemas.testing import T0, event_record
from streams.topics import Topics
from tests.integration.lake_helpers import LakeProcess, lake_settings, produce, progress, rows, wait_committed
from touchstream.settings import Settings

DAY = 86_400_000


def test_sigkill_mid_stream_neither_duplicates_nor_loses_a_row(settings: Settings, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    config = lake_settings(settings, lake, own_topics=True, lake_roll_bytes=50_000, lake_roll_s=1,
                           lake_batch_size=300)
    group = f"{config.app_id}-lake"
    topic = Topics.of(config).resolved
    marker = f"lk-{uuid.uuid4().hex[:8]}-"
    encode = default_registry().encoder(EVENT)
    sent: list[str] = []
    producing = threading.Event()
    producing.set()

    counter = iter(range(10**9))
    lock = threading.Lock()

    def send(count: int) -> None:
        chunk = []
        with lock:
            for _ in range(count):
                n = next(counter)
                mid = f"{marker}{n}"
                event = event_record("track", T0 + (n % 4) * DAY, message_id=mid, oneid=f"o-{n % 97}",
                                     event="Seen", properties={"n": n})
                chunk.append((f"o-{n % 97}".encode(), encode(event)))
                sent.append(mid)
        produce(config, topic, chunk)

    def traffic() -> None:  # live traffic during the kills: ~2,500 events/s over four days
        while producing.is_set():
            send(250)
            time.sleep(0.1)

    producer = threading.Thread(target=traffic, daemon=True)
    producer.start()
    sink = LakeProcess(config, tmp_path / "lake.log")
    rng = random.Random(13)
    kills = 0
    try:
        for _ in range(3):
            sink.start()
            before = progress(config, group)[0]
            deadline = time.monotonic() + 60
            while progress(config, group)[0] <= before:  # joined and committing
                assert time.monotonic() < deadline, (tmp_path / "lake.log").read_text()[-3000:]
                time.sleep(0.2)
            send(15_000)  # a backlog: the kill lands mid-batch (decoding, a segment, a roll)
            time.sleep(rng.uniform(0.0, 0.8))
            sink.kill()
            kills += 1
        producing.clear()
        producer.join()
        sink.start()
        wait_committed(config, group)
        assert sink.stop() == 0, (tmp_path / "lake.log").read_text()[-3000:]
    finally:
        producing.clear()
        if sink.proc is not None and sink.proc.poll() is None:
            sink.kill()

    found = rows(lake, "events", ["message_id", "_partition", "_offset"])
    mine = Counter(r["message_id"] for r in found if r["message_id"].startswith(marker))
    assert kills == 3 and len(sent) > 5000
    assert [mid for mid, n in mine.items() if n > 1] == []  # none twice
    assert set(mine) == set(sent)  # none lost
    positions = Counter((r["_partition"], r["_offset"]) for r in found)
    assert max(positions.values()) == 1
    assert list((lake / "_spool").glob("*/*.arrow")) == []  # a clean stop rolls everything
    days = {p.name for p in (lake / "events").iterdir()}
    assert {"event_date=2023-11-14", "event_date=2023-11-17"} <= days
