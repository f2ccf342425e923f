"""One profile's stream segments as of a time: the ops that make Redis agree, and when to look again.

Pure logic over a :class:`ProfileState` copy, like the engine. :meth:`Membership.entry` evaluates
every stream segment's condition on the ``profile`` variable as of :func:`as_of` and returns the
``seg`` part of an ``apply`` entry (``profiles/lua/apply.lua``):

    {"mg": <merge count as read>, "ops": [[segment, was, want, next_check, reason, as_of,
                                            message_id, facts], ...]}

``was`` is the membership read, ``want`` the answer now; the script refuses the whole entry when
the profile changed under it (``mg`` or any ``was`` differs), and the store evaluates again on a
fresh read. An op is sent for a change and, with ``stays`` (a re-check, a timer, a merge), for a
member that stays, to move its next re-check. After events a staying member's re-check is left
where it was: an event only moves the times that could end membership later (tags are extended,
new buckets are younger), so the stored one is at worst early, and a batch then costs no
re-check computation and no index write per member.

``facts`` is what the conditions read, as JSON (the "why" of an entry or an exit), bounded to
:data:`MAX_FACTS_CHARS` (traits are left out first).
"""

from __future__ import annotations

from typing import Any

from profiles import aggregates as agg
from profiles import jsonsafe
from profiles.evaluation import Evaluator, safe_context
from profiles.facts import Facts
from profiles.rules.model import Rules, SegmentRule
from profiles.state import ProfileState

MAX_FACTS_CHARS = 2000

Op = list[Any]


def as_of(st: ProfileState, now_ms: int) -> int:
    """When membership is evaluated: now, or the person's latest event if it is later (skew)."""
    return max(now_ms, st.last_seen or 0)


def next_check(rules: Rules, rule: SegmentRule, st: ProfileState, as_of_ms: int) -> int:
    """The first time after ``as_of_ms`` at which time alone could change a member's answer.

    Exact for what expires on a known date: a tag's expiry, a windowed aggregate's oldest bucket
    leaving its window (also the tier's aggregate), the tier's inactivity downgrade. Anything that
    drifts continuously (the decaying score) and a changed rule are caught by the re-check every
    ``options.segment_recheck``, the latest this returns.
    """
    latest = as_of_ms + rules.options.segment_recheck_ms
    out = latest
    needs = rule.when.needs.profile if rule.when is not None else None

    def reads(member: str) -> bool:
        return needs is None or member in needs

    if reads("tags"):
        for expiry in st.tags.values():
            if as_of_ms < expiry < out:
                out = expiry
    names: set[str] = set()
    if reads("agg"):
        subs = None if needs is None else needs.get("agg")
        names.update(rules.aggregates if subs is None else subs)
    tier = rules.tier
    if reads("tier") and tier is not None:
        names.add(tier.aggregate)
        li = st.last_interaction
        if tier.inactive_after_ms and li is not None and as_of_ms < li + tier.inactive_after_ms < out:
            out = li + tier.inactive_after_ms
    for name in names:
        spec = rules.aggregates.get(name)
        if spec is None or not spec.window_ms:
            continue
        width = agg.bucket_count(spec.window_ms, spec.bucket_ms)
        for idx in st.buckets.get(name, {}):
            leaves = (idx + width) * spec.bucket_ms  # the bucket is out of the window from then on
            if as_of_ms < leaves < out:
                out = leaves
    return out


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
        when = as_of(st, now_ms)
        profile = self.facts.profile(st, self.rules.segment_needs.profile, when) if st.exists else {}
        ctx = safe_context({"profile": profile})
        ops: list[Op] = []
        facts: str | None = None
        for rule in segments:
            assert rule.when is not None
            was = st.member_of(rule.name)
            want = st.exists and self.evaluator.test(rule.when, ctx, f"segments.{rule.name}")
            if was == want and not (want and stays):
                continue
            if was != want and facts is None:
                facts = _facts(profile)
            ops.append([rule.name, int(was), int(want), next_check(self.rules, rule, st, when) if want else 0,
                        reason, when, message_id, facts if was != want else ""])
        if not ops:
            return None
        return {"mg": st.merge_gen, "ops": ops}


def _facts(profile: dict[str, Any]) -> str:
    """What the conditions read, as JSON; without traits (then nothing) when it is too long."""
    text = jsonsafe.dumps(profile, sort_keys=True)
    if len(text) > MAX_FACTS_CHARS:
        text = jsonsafe.dumps({k: v for k, v in profile.items() if k != "traits"}, sort_keys=True)
    return text if len(text) <= MAX_FACTS_CHARS else "{}"
