"""Errors of identity resolution; all derive from :class:`touchstream.errors.TouchstreamError`.

A bad rules file raises the shared :class:`touchstream.errors.ConfigError` (naming the key).
"""

from __future__ import annotations

from touchstream.errors import TouchstreamError


class IdentityError(TouchstreamError):
    """An identity-graph operation could not be carried out as asked."""


class ProfileNotFoundError(IdentityError):
    """The OneID names no live profile (nor an alias of one)."""


class NotLinkedError(IdentityError):
    """The identifier is not linked to the profile an operation named."""


class UnmergeError(IdentityError):
    """A split would leave one side empty, so it would undo nothing."""


class GraphStateError(IdentityError):
    """The graph in Redis was written with other storage settings (e.g. index_buckets) than these rules."""
