"""Garbage collection of anonymous-only profiles: every new anonymousId must not live forever.

A visitor who never identified and sent nothing for ``anonymous_profile_ttl_s`` (90 days by
default; judged by receipt time, so imported history is not collected the moment it lands) is
removed from the identity graph, then their profile state. It is not an erasure: nothing is
suppressed, and the same anonymousId coming back starts a new profile. A crash between the two
steps leaves state without identity (invisible, and small); the graph step is atomic per profile,
so several workers can collect at once without overlap.
"""

from __future__ import annotations

from identity.graph import IdentityGraph
from profiles.store import ProfileStore
from touchstream import metrics

#: Profiles removed per graph call, and calls per tick: a tick stays well under a second.
BATCH = 500
ROUNDS = 4


def collect_idle_profiles(graph: IdentityGraph, store: ProfileStore, now_ms: int, idle_ms: int) -> int:
    """Remove up to ``BATCH * ROUNDS`` idle anonymous-only profiles; how many were removed."""
    removed = 0
    for _ in range(ROUNDS):
        oneids = graph.collect_idle_anonymous(now_ms, idle_ms, BATCH)
        for oneid in oneids:
            store.delete_profile(oneid)
        removed += len(oneids)
        metrics.PROFILES_COLLECTED.inc(len(oneids))
        if len(oneids) < BATCH:
            break
    return removed
