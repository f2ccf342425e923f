"""What every Kafka client of a process shares: the broker, the security options, the logger.

Security (TLS, SASL) is a property of the deployment, not of a loop, so the process sets it
once at start (``use_options``, from ``TOUCHSTREAM_KAFKA_OPTIONS``) and every producer, consumer
and admin client built through :func:`client_config` carries it. librdkafka's own lines go
through Python logging (logger ``librdkafka``) instead of raw ``%3|...`` lines on stderr.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

KAFKA_LOG = logging.getLogger("librdkafka")
_options: dict[str, str] = {}


def use_options(options: Mapping[str, str]) -> None:
    """librdkafka properties every later client of this process gets (e.g. ``security.protocol``)."""
    _options.clear()
    _options.update(options)


def client_config(broker: str, **config: object) -> dict[str, Any]:
    """A client's configuration: ``broker``, the process's options, the logger, then ``config``
    (Any: the stubs want plain values, but every client takes the logger object)."""
    return {"bootstrap.servers": broker, **_options, "logger": KAFKA_LOG, **config}
