"""What the stages need of Redis, as small Protocols: claims, the identity graph, the profile store.

The real ones are ``streams.claims.Claims``, ``identity.graph.IdentityGraph`` and
``profiles.store.ProfileStore``; ``streams/testing.py`` has in-memory fakes, so a stage is unit
tested with dicts and no Redis.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from identity.graph import BatchResolution, PendingMerge
from profiles.engine import BatchResult


class ClaimLedger(Protocol):
    """Exact dedup: the first position to claim a (source, messageId) owns it."""

    def claim(self, items: Sequence[tuple[str, str, str]]) -> list[bool]:
        """For each (source, message_id, position): True to process, False for a duplicate."""
        ...


class Resolver(Protocol):
    """The identity graph as the resolve stage sees it."""

    def resolve_batch(self, events: Sequence[Mapping[str, Any]], now_ms: int | None = None
                      ) -> BatchResolution: ...


class MergeLog(Protocol):
    """The identity graph's merge outbox (``graph.lua`` writes it in the resolving run)."""

    def merges_acknowledged(self, merged: Iterable[str]) -> None: ...

    def unacknowledged_merges(self, older_than_s: float, now_s: float) -> list[PendingMerge]: ...


class Graph(Resolver, MergeLog, Protocol):
    """The identity graph as the resolve stage uses it (``identity.graph.IdentityGraph``)."""


class ProfileApplier(Protocol):
    """The profile store as the profile and merge stages see it."""

    def apply_batch(self, partition: int, events: Sequence[tuple[int, dict[str, Any]]],
                    now_ms: int) -> BatchResult: ...

    def close_expired(self, now_ms_watermark: int, partitions: Iterable[int] | None = None
                      ) -> list[dict[str, Any]]: ...

    def close_expired_result(self, now_ms_watermark: int, partitions: Iterable[int] | None = None
                             ) -> BatchResult: ...

    def merge_many(self, pairs: Sequence[tuple[str, str]], now_ms: int = 0) -> list[dict[str, Any]]: ...

    def refresh_segments(self, oneids: Iterable[str], now_ms: int, reason: str) -> list[dict[str, Any]]:
        """Evaluate these profiles' stream segments now; the changes recorded."""
        ...

    def sweep_segments(self, now_ms: int, limit: int = 500) -> list[dict[str, Any]]:
        """Re-check segment members whose time came; the changes recorded."""
        ...

    def schedule_segments(self, now_ms: int) -> int:
        """One bounded step of the scan evaluating every profile again when the stream segments'
        definitions changed (a timer due now each); the timers set."""
        ...
