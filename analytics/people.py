"""The lake's rows as people's rows: the relation every question starts from.

``person`` is the OneID's survivor (``identities``: merges followed), so what a merged OneID did
counts for the person it joined. Only the merged OneIDs are looked up (``hops > 0``): everybody
else is their own survivor, and the full ``identities`` view lists every OneID of the lake, a
pass over all events (13 s at 10M events on 2 cores) that no question needs.

Questions read ``events_raw`` and never deduplicate it (7 s at 10M events): the copies the lake
may hold of an event (a replay after a crash: the same source and messageId, the same time)
cannot change a first or last time, an existence, or a funnel whose steps are strictly later
than one another (``analytics.funnels``). After an operator's unmerge they read the ``events``
view instead, which moves the events the split moved (``analytics.touches.event_source``).
"""

from __future__ import annotations

from analytics.touches import event_source

__all__ = ["MERGED", "event_source", "with_person"]

MERGED = "(SELECT oneid, survivor FROM identities WHERE hops > 0)"


def with_person(relation: str) -> str:
    """``relation`` (a subquery or view with a ``oneid`` column) with each row's ``person``.

    A question aggregating per person can aggregate per OneID first: a million OneIDs join the
    merges cheaper than ten million events do."""
    return f"""(
        SELECT coalesce(m.survivor, e.oneid) AS person, e.* FROM {relation} e
        LEFT JOIN {MERGED} m ON m.oneid = e.oneid)"""  # noqa: S608 (the callers' own SQL)
