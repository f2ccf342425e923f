"""An operator's unmerge goes on the merges topic at once, so the lake moves its history too.

The graph's unmerge script leaves the record in the merge outbox in the same atomic run; here it
is produced and, after Kafka's ack, cleared. If Kafka does not take it now, nothing is lost: the
resolve stage re-sends what the outbox still holds after its grace period (``streams/outbox.py``).
"""

from __future__ import annotations

import logging

from identity.graph import IdentityGraph, UnmergeResult
from schemas.codec import default_registry
from streams.producers import AsyncProducer, BlockingProducer, producer_config
from streams.topics import Topics
from touchstream.settings import Settings

log = logging.getLogger(__name__)
REASON = "operator_unmerge"


def _record(result: UnmergeResult) -> tuple[bytes, bytes]:
    value = default_registry().encoder("identity_merge")(result.pending.record(result.at_ms, REASON))
    return result.oneid.encode(), value


def announce(settings: Settings, graph: IdentityGraph, result: UnmergeResult) -> bool:
    """Produce the unmerge record and clear its outbox entry; False when Kafka did not take it."""
    producer = BlockingProducer(producer_config(settings.broker))
    try:
        producer.send_all({Topics.of(settings).merges: [_record(result)]})
    except Exception:  # Kafka down or refusing: the outbox keeps it for the resolve stage
        log.warning("unmerge %s -> %s not on the merges topic yet; the workers will re-send it",
                    result.oneid, result.new_oneid, exc_info=True)
        return False
    graph.merges_acknowledged([result.new_oneid])
    return True


async def announce_async(producer: AsyncProducer, topics: Topics, graph: IdentityGraph,
                         result: UnmergeResult) -> bool:
    """The same from the API's event loop, on the collector's producer."""
    try:
        await producer.send_all(topics.merges, [_record(result)])
    except Exception:
        log.warning("unmerge %s -> %s not on the merges topic yet; the workers will re-send it",
                    result.oneid, result.new_oneid, exc_info=True)
        return False
    graph.merges_acknowledged([result.new_oneid])
    return True
