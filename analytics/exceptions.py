"""Errors of the lake's questions (one root: ``touchstream.errors.TouchstreamError``)."""

from __future__ import annotations

from touchstream.errors import TouchstreamError


class AnalyticsError(TouchstreamError):
    """A question cannot be asked as put (a bad step, window or option) or the lake lacks its data."""
