"""One profile's stream segments as of a time: the ops that make Redis agree, and when to look again.

Pure logic over a :class:`ProfileState` copy, like the engine. :meth:`Membership.entry` evaluates
every stream segment's condition on the ``profile`` variable as of :func:`as_of` and returns the
``seg`` part of an ``apply`` entry (``profiles/lua/apply.lua``):

    {"mg": <merge count as read>, "ops": [[segment, was, want, next_check, reason, as_of,
                                            message_id, facts], ...], "due": ms, "lt": 1}

``was`` is the membership read, ``want`` the answer now; the script refuses the whole entry when
the profile changed under it (``mg`` or any ``was`` differs), and the store evaluates again on a
fresh read. An op is sent for a change and, with ``stays`` (a re-check, a timer, a merge), for a
member that stays, to move its next re-check. After events a staying member's re-check is left
where it was: an event only moves the times that could end membership later (tags are extended,
new buckets are younger), so the stored one is at worst early, and a batch then costs no index
write per member (under rules with a timed segment it still computes the segment timer, below).

``due`` (only under rules with a timed segment, :attr:`Rules.timed_segments`) is the profile's
*segment timer*: the earliest moment time alone could change one of its timed segments
(``timing.py``), kept in its partition's due set like the triggers' timers, so the sweep
evaluates the profile then and a person *enters* by time alone as exactly as one leaves. A
segment counts for a member, and for a non-member only when time alone can make its condition
true (:attr:`Rules.segments_entered_by_time`: not ``hot_leads``, whose score decays and whose
tags expire), so most people of such rules keep no timer (-1: none, or the profile is gone).
After events it comes with ``lt``: it may only move earlier (a new short tag, a new score), an
older one is at worst early.

``facts`` is what the conditions read, as JSON (the "why" of an entry or an exit), bounded to
:data:`MAX_FACTS_CHARS` (traits are left out first).
"""

from __future__ import annotations

from typing import Any

from profiles import jsonsafe
from profiles.conditions import NOW
from profiles.evaluation import Evaluator, safe_context
from profiles.facts import Facts
from profiles.rules.model import Rules
from profiles.segments.timing import next_change, next_check
from profiles.state import ProfileState

__all__ = ["MAX_FACTS_CHARS", "Membership", "as_of", "next_check"]

MAX_FACTS_CHARS = 2000

Op = list[Any]


def as_of(st: ProfileState, now_ms: int) -> int:
    """When membership is evaluated: now, or the person's latest event if it is later (skew)."""
    return max(now_ms, st.last_seen or 0)


class Membership:
    """Evaluates the stream segments of :class:`Rules` (conditions through ``evaluator``)."""

    def __init__(self, rules: Rules, facts: Facts, evaluator: Evaluator) -> None:
        self.rules = rules
        self.facts = facts
        self.evaluator = evaluator

    def entry(self, st: ProfileState, now_ms: int, *, reason: str, message_id: str = "",
              stays: bool = True) -> dict[str, Any] | None:
        """The ``seg`` part of the profile's apply entry, or None when nothing is to be written."""
        segments = self.rules.stream_segments
        if not segments:
            return None
        timed = self.rules.timed_segments
        enters = self._entered_by_time(st)
        when = as_of(st, now_ms)
        profile = self.facts.profile(st, self.rules.segment_needs.profile, when) if st.exists else {}
        variables: dict[str, Any] = {"profile": profile}
        if any(rule.when is not None and rule.when.reads_now for rule in segments):
            variables[NOW] = when
        ctx = safe_context(variables)
        ops: list[Op] = []
        facts: str | None = None
        due: int | None = None
        for rule in segments:
            assert rule.when is not None
            was = st.member_of(rule.name)
            want = st.exists and self.evaluator.test(rule.when, ctx, f"segments.{rule.name}")
            moves = was != want or (want and stays)
            check = 0
            timer = rule.name in timed and (want or rule.name in enters)  # time can change it
            if st.exists and (timer or (want and moves)):
                check = next_change(self.rules, self.facts, rule, st, when, want)
                if timer:
                    due = check if due is None else min(due, check)
            if not moves:
                continue
            if was != want and facts is None:
                facts = _facts(profile)
            ops.append([rule.name, int(was), int(want), check if want else 0,
                        reason, when, message_id, facts if was != want else ""])
        seg: dict[str, Any] = {"mg": st.merge_gen, "ops": ops}
        if timed:  # the profile's segment timer: moved, or dropped with the profile
            seg["due"] = due if due is not None else -1
            if not stays:
                seg["lt"] = 1  # after events: only ever earlier (an event can move a change closer)
        elif not ops:
            return None
        return seg

    def _entered_by_time(self, st: ProfileState) -> frozenset[str]:
        """The timed segments time alone could bring this profile into: fewer when none of its
        windowed sums holds a negative bucket (time then only lowers them, and the tier)."""
        for spec in self.rules.timed_sums:
            if any(v < 0 for v in st.buckets_of(spec.name, spec.sid, spec.kind).values()
                   if isinstance(v, (int, float))):
                return self.rules.segments_entered_by_time
        return self.rules.segments_entered_by_time_if_sums_fall


def _facts(profile: dict[str, Any]) -> str:
    """What the conditions read, as JSON; without traits (then nothing) when it is too long."""
    text = jsonsafe.dumps(profile, sort_keys=True)
    if len(text) > MAX_FACTS_CHARS:
        text = jsonsafe.dumps({k: v for k, v in profile.items() if k != "traits"}, sort_keys=True)
    return text if len(text) <= MAX_FACTS_CHARS else "{}"
