"""One RFM run: scores from the lake, the changed traits sent to profiles through the pipeline."""

from __future__ import annotations

import time

import pyarrow as pa

from analytics.rfm import RfmOptions, rfm, segment_counts
from analytics.rfm_traits import changes, last_sent, publish
from analytics.touches import Conversion
from apps import factory
from connectors.lake.query import connect
from schemas.codec import default_registry
from streams.topics import Topics
from touchstream.settings import Settings


def run_rfm(settings: Settings, conversion: Conversion, *, send: bool = True,
            now_ms: int | None = None) -> tuple[pa.Table, int]:
    """The segment counts and how many profiles were sent new values."""
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    con = connect(factory.lake_config(settings).path)
    table = rfm(con, RfmOptions(conversion, as_of_ms=now))
    counts = segment_counts(table)
    if not send:
        return counts, 0
    changed = changes(table, last_sent(con))
    if not changed:
        return counts, 0
    producer = factory.blocking_producer(settings)
    topic = Topics.of(settings).resolved
    sent = publish(changed, now_ms=now, run=str(now), encode=default_registry().encoder("event"),
                   send=lambda items: producer.send_all({topic: items}))
    return counts, sent
