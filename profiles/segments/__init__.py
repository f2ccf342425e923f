"""Segments (audiences): who is in, who came in, who left, each change recorded exactly once.

A segment is declared in the ``segments:`` section of the profile rules file, beside the
aggregates and tags its conditions read (one file, checked together, hot-reloaded together)::

    segments:
      hot_leads: {if: 'profile.score >= 60 && "high_intent" in profile.tags'}
      lapsed:    {sql: "SELECT oneid FROM events GROUP BY oneid HAVING max(timestamp) < ..."}

- A **stream segment** (``if:``, CEL over ``profile`` and ``now``, the evaluation time in ms)
  is evaluated in the stream, as of now: after a batch's events are applied (for every profile
  the batch changed), when one of the person's timers runs, after a merge (the survivor), and
  when time alone could change its answer, *in or out*. Under rules with a *timed* segment (one
  reading tags, a windowed aggregate, the tier, a decaying score or ``now``:
  :attr:`Rules.timed_segments`) every profile, member or not, keeps one *segment timer* in its
  partition's due set, beside the triggers' timers: the earliest moment any timed segment's
  answer could change (:mod:`timing`), at most ``options.segment_recheck`` away. The worker's
  tick evaluates due profiles in chunks, so the people who send nothing more enter
  ``dormant: {if: 'now - profile.last_seen > 90 * 86400000'}`` on time. Exact (to the tick):
  known dates (a tag's expiry, a bucket leaving its window, the tier's inactivity downgrade) and
  an answer that drifts across one threshold (``now`` against a stored time, a decaying score:
  found to the second by bisection within each re-check interval). Left to the periodic
  re-check: an answer that flips and flips back within one interval (never
  seen). Rules without a timed segment keep no segment timer and pay nothing. Whenever the
  stream segments' definitions change (a segment added, renamed or its ``if:`` changed:
  :attr:`Rules.segment_fingerprint`), every existing profile gets a segment timer due now, a
  bounded scan step per tick (``segscan``, its cursor in Redis), so it is evaluated once under
  the new rules without another event: today's VIPs fill a new ``vip`` segment, each entry
  recorded once (a repeated step only re-evaluates); an evaluation needing no timer drops it.
  A non-member is timed only for a segment time alone could bring it into
  (:attr:`Rules.segments_entered_by_time`, ``profiles/rules/monotone.py``): not ``hot_leads``,
  whose score decays and whose tags expire, nor ``tier == "A"`` while the tier's windowed sum
  holds no negative bucket.
  Members of every stream segment are also re-checked through the segment's index
  (``sweep_segments``) at least every ``options.segment_recheck``.
- An **SQL segment** (``sql:``, a query over the lake's DuckDB views returning ``oneid``) is
  evaluated by ``touchstream segment refresh``: the answer, mapped to survivors, is diffed with
  the stored members.

Both kinds record each change the same way. Membership lives in Redis (``profiles/layout.py``):
a stream member has ``m:<segment>`` in its profile hash, and every member of either kind is in
the segment's index ``segment:<name>`` (a sorted set, so ``count`` is ZCARD). A change is made by
the profile script in the same atomic run as what caused it (the batch's state, the merge, the
deletion), which also takes the segment's next *version* and writes a ``segment_entered`` or
``segment_exited`` record to the segments outbox; the stage produces it to ``<prefix>.segments``
(keyed by OneID) and clears it after Kafka's ack. A replay finds membership already changed and
writes nothing; a crash between the script and the ack leaves the record in the outbox, re-sent
with the same idempotency key (``<segment>:<oneid>:<version>``). A merged OneID exits everything
(``reason: merged``, with the survivor); a deleted profile exits everything (``deleted``).

An evaluation read before another writer changed the profile (a merge folded into it, a
membership changed) is refused by the script (a compare-and-set on the merge count ``mg`` and
each membership read) and done again on a fresh read, so two loops never both record a change.

    records.py      the record (Avro ``io.touchstream.SegmentChange``), its line in the outbox
    membership.py   one profile's stream segments as of a time: the ops, the segment timer
    timing.py       when time alone could next change a segment's answer (dates, drift)
"""

from __future__ import annotations

from profiles.segments.membership import Membership, as_of, next_check
from profiles.segments.records import ENTERED, EXITED, from_line, idempotency_key

__all__ = ["ENTERED", "EXITED", "Membership", "as_of", "from_line", "idempotency_key", "next_check"]
