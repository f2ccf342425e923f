"""Webhook sink: delivers real-time triggers to downstream HTTP services, exactly once in effect.

Public API: :func:`run_webhook_sink` (the blocking process), :func:`load_config` /
:func:`parse_config` (the YAML file), :func:`sign` / :func:`verify_signature` (for receivers).
"""

from __future__ import annotations

from connectors.webhook.config import Backoff, Endpoint, WebhookConfig, load_config, parse_config
from connectors.webhook.exceptions import WebhookError
from connectors.webhook.signing import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    sign,
    verify_signature,
)
from connectors.webhook.sink import SinkStats, run_webhook_sink

__all__ = [
    "IDEMPOTENCY_HEADER",
    "SIGNATURE_HEADER",
    "Backoff",
    "Endpoint",
    "SinkStats",
    "WebhookConfig",
    "WebhookError",
    "load_config",
    "parse_config",
    "run_webhook_sink",
    "sign",
    "verify_signature",
]
