"""The big-lake bench's live questions (segment refresh and count) on the real Redis."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from analytics.segments import target_members
from apps import factory
from bench import lake_history
from connectors.lake.query import connect
from profiles.layout import SEGMENT_OUTBOX_KEY
from streams.outbox import SegmentOutbox
from touchstream.settings import Settings


def test_the_sql_segment_refresh_enters_its_answer_and_the_count_reads_it(settings: Settings,
                                                                          tmp_path: Path) -> None:
    path, _ = lake_history.build(30_000, tmp_path)  # enough people with 3+ recent orders
    own = replace(settings, redis_prefix=f"{settings.redis_prefix}bench-lake:")
    client = factory.redis_client(own)
    live = lake_history.Live(factory.profile_store(own, client), SegmentOutbox(client, own.redis_prefix))
    try:
        wanted = target_members(connect(path), lake_history.BIG_BUYERS)
        refresh, count = lake_history.TIMED_LIVE
        assert refresh.run(connect(path), path, live) == len(wanted) > 0
        assert count.run(connect(path), path, live) == len(wanted)
        assert refresh.run(connect(path), path, live) == 0  # nothing changed: nothing entered
        assert client.hlen(f"{own.redis_prefix}{SEGMENT_OUTBOX_KEY}") == 0  # every record acknowledged
    finally:
        for key in client.scan_iter(match=f"{own.redis_prefix}*"):
            client.unlink(key)
