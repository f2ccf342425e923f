"""Errors of the webhook sink; all derive from :class:`touchstream.errors.TouchstreamError`.

A bad config file raises the shared :class:`touchstream.errors.ConfigError` (naming the key).
"""

from __future__ import annotations

from touchstream.errors import TouchstreamError


class WebhookError(TouchstreamError):
    """The webhook sink could not do its job."""


class PayloadError(WebhookError):
    """A trigger whose body cannot be built (its ``values`` is not JSON text)."""


class DoneStoreError(WebhookError):
    """Redis did not take the delivered marks; offsets must not be committed."""
