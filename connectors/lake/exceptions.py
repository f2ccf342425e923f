"""Errors of the lake (one root: ``touchstream.errors.TouchstreamError``)."""

from __future__ import annotations

from touchstream.errors import TouchstreamError


class LakeError(TouchstreamError):
    """The lake cannot do what was asked (locked by another sink, a missing topic, a bad query)."""
