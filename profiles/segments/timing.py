"""When time alone could next change a stream segment's answer for one profile.

Two kinds of change, told apart per segment by :attr:`Rules.timed_segments`:

- **steps, on known dates**: a tag's expiry, a windowed aggregate's oldest bucket leaving its
  window (also the tier's aggregate), the tier's inactivity downgrade. :func:`next_check` returns
  the first such date: exact.
- **drift**: ``now`` grows and a decaying score moves at every moment. Between two steps nothing
  else changes, so :func:`next_change` asks the condition once more, just before the next step
  (or the re-check interval's end): if the answer differs there, it finds the first second at
  which it does by bisection (about 12 more evaluations, only for a profile whose answer is
  about to change). That is exact for an answer that changes at most once between two steps
  (``now - profile.last_seen > 90 * DAY``, ``profile.score < 10``, any threshold on one moving
  value); an answer that flips and flips back within one interval is not seen.

Both are bounded by ``options.segment_recheck``: whatever the rules say, a profile with a timed
segment is evaluated again at least that often (a changed rule, a condition time changes in
ways the two above do not see). Probes never count rule errors (the real evaluation does).
"""

from __future__ import annotations

from typing import Any

from profiles import aggregates as agg
from profiles.conditions import NOW, EvalError
from profiles.evaluation import safe_context
from profiles.facts import Facts
from profiles.rules.model import Rules, SegmentRule
from profiles.state import ProfileState

RESOLUTION_MS = 1000  # a drifting answer's change is found to the second (the tick's period)


def next_check(rules: Rules, rule: SegmentRule, st: ProfileState, as_of_ms: int) -> int:
    """The first known date after ``as_of_ms`` at which time alone could change the answer, at
    most ``options.segment_recheck`` away (see the module doc)."""
    latest = as_of_ms + rules.options.segment_recheck_ms
    out = latest
    needs = rule.when.needs.profile if rule.when is not None else None

    def reads(member: str) -> bool:
        return needs is None or member in needs

    if reads("tags"):
        for expiry in st.tag_expiries().values():
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
        for idx in st.buckets_of(name, spec.sid, spec.kind):
            leaves = (idx + width) * spec.bucket_ms  # the bucket is out of the window from then on
            if as_of_ms < leaves < out:
                out = leaves
    return out


def next_change(rules: Rules, facts: Facts, rule: SegmentRule, st: ProfileState, as_of_ms: int,
                answer: bool) -> int:
    """When to look at this profile's ``rule`` again, its answer as of ``as_of_ms`` being
    ``answer``: the next step, or the first second a drifting answer differs before it."""
    step = next_check(rules, rule, st, as_of_ms)
    if not rules.timed_segments.get(rule.name, False):
        return step
    lo, hi = as_of_ms, step - 1
    if hi <= lo or _answer(facts, rule, st, hi) == answer:
        return step
    while hi - lo > RESOLUTION_MS:  # lo: still the old answer, hi: already the new one
        mid = (lo + hi) // 2
        if _answer(facts, rule, st, mid) == answer:
            lo = mid
        else:
            hi = mid
    return hi


def _answer(facts: Facts, rule: SegmentRule, st: ProfileState, at_ms: int) -> bool:
    """The rule's answer as of ``at_ms``; a failure is "no", uncounted (a probe, not a verdict)."""
    assert rule.when is not None
    variables: dict[str, Any] = {"profile": facts.profile(st, rule.when.needs.profile, at_ms)}
    if rule.when.reads_now:
        variables[NOW] = at_ms
    try:
        return rule.when(safe_context(variables)) is True
    except EvalError:
        return False
