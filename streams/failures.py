"""Which failures belong to the infrastructure and which to the records being processed.

A stage loop treats the two differently (``streams/stage_loop.py``):

- **infrastructure**: Redis or Kafka unreachable, timing out, loading its data, read-only,
  out of memory, a script busy. Nothing is wrong with the batch; it is retried unchanged,
  with backoff, for as long as it takes.
- **data**: anything else raised while processing. Retrying cannot help (a public write key
  sent something the code did not expect), so the loop bisects the batch to find the
  record(s) that fail and dead-letters them with reason ``processing_error``; the rest of the
  batch goes on. Before this split one unparsable URL stopped every profile in the group.
"""

from __future__ import annotations

import redis.exceptions as redis_errors
from confluent_kafka import KafkaException

#: Redis error replies that report the server's state, not the command's input.
_REDIS_STATE_REPLIES = ("LOADING", "BUSY", "READONLY", "OOM", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN",
                        "NOREPLICAS", "MISCONF", "NOSCRIPT")

_INFRASTRUCTURE = (
    redis_errors.ConnectionError,  # BusyLoadingError too
    redis_errors.TimeoutError,
    redis_errors.ReadOnlyError,
    KafkaException,  # delivery timed out, broker unreachable, fatal producer state
    BufferError,  # librdkafka's local queue is full
    ConnectionError,
    TimeoutError,
)


def is_infrastructure(exc: BaseException) -> bool:
    """True when ``exc`` says Redis or Kafka is unavailable, not that a record is bad."""
    if isinstance(exc, _INFRASTRUCTURE):
        return True
    if isinstance(exc, redis_errors.ResponseError):
        return str(exc).lstrip().upper().startswith(_REDIS_STATE_REPLIES)
    return False


def describe(exc: BaseException) -> str:
    """``Class: message`` for a dead letter (the message may quote client data: never log it)."""
    return f"{type(exc).__name__}: {exc}"
