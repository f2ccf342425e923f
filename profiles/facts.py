"""What a profile *is* as of a time: aggregates, score, tier, consent, the ``profile`` CEL variable.

Facts are computed from a :class:`ProfileState` copy and the rules, never stored as such: an
aggregate is read from its buckets, the score decays with event time, the tier follows the
tier aggregate (one inactivity downgrade after ``tier.inactive_after``). The sum of attribute
points is cached per set of trait values (``Rules.attribute_cache``), because it changes only
when traits do.
"""

from __future__ import annotations

from typing import Any

from profiles import aggregates as agg
from profiles import scoring
from profiles.conditions import PROFILE_FIELDS, Refs
from profiles.evaluation import Evaluator, safe_context
from profiles.events import MAX_MEMO_KEY_CHARS
from profiles.rules.model import Rules
from profiles.state import ProfileState
from profiles.triggers import records

ATTRIBUTE_CACHE_LIMIT = 4096


class Facts:
    """Profile facts under one :class:`Rules` (conditions of attribute points via ``evaluator``)."""

    def __init__(self, rules: Rules, evaluator: Evaluator) -> None:
        self.rules = rules
        self.evaluator = evaluator

    def aggregate(self, st: ProfileState, name: str, as_of: int) -> Any:
        rule = self.rules.aggregates[name]
        return agg.value_as_of(rule.op, st.buckets_of(name, rule.sid, rule.kind), as_of, rule.window_ms,
                               rule.bucket_ms)

    def attribute_points(self, st: ProfileState) -> float:
        score = self.rules.score
        if score is None or not score.attributes:
            return 0.0
        if st.attribute_points is not None and st.attribute_points[0] == st.traits_version:
            return st.attribute_points[1]
        names = self.rules.attribute_traits
        if names is None:
            key: tuple[Any, ...] = tuple(sorted((k, v[1]) for k, v in st.traits.items()))
        else:
            key = tuple(st.trait_text(n) for n in names)
        cache = self.rules.attribute_cache
        cached = cache.get(key)
        if cached is None:
            traits = (
                {n: st.trait(n) for n in st.traits}
                if names is None
                else {n: st.trait(n) for n in names if st.trait_text(n) is not None}
            )
            ctx = safe_context({"profile": {"traits": traits}})
            test = self.evaluator.test
            cached = sum(
                a.points for a in score.attributes if test(a.when, ctx, f"score.attributes.{a.rule}")
            )
            if len(cache) >= ATTRIBUTE_CACHE_LIMIT:
                cache.clear()
            if _key_chars(key) <= MAX_MEMO_KEY_CHARS:
                cache[key] = cached
        st.attribute_points = (st.traits_version, cached)
        return cached

    def score(self, st: ProfileState, as_of: int) -> float:
        spec = self.rules.score
        if spec is None:
            return 0.0
        total = scoring.score_at(st.score, as_of, spec.half_life_ms) + self.attribute_points(st)
        if spec.cap is not None:
            total = min(total, spec.cap)
        return round(total, 3)

    def tier(self, st: ProfileState, as_of: int) -> str | None:
        spec = self.rules.tier
        if spec is None or spec.aggregate not in self.rules.aggregates:
            return None
        base = scoring.tier_for(self.aggregate(st, spec.aggregate, as_of) or 0, spec.levels)
        li = st.last_interaction
        if spec.inactive_after_ms and li is not None and as_of - li >= spec.inactive_after_ms:
            return scoring.downgrade(base, spec.levels, spec.downgrade_steps)
        return base

    def consents(self, st: ProfileState, purpose: str) -> bool:
        """Whether the person allows ``purpose``: their latest answer, else the purpose's default."""
        spec = self.rules.purposes.get(purpose)
        if spec is None:
            return False  # a purpose the rules do not know is never allowed
        answer = records.consent_answer(st.trait(spec.trait))
        return spec.default if answer is None else answer

    def consent(self, st: ProfileState) -> dict[str, bool]:
        """Every purpose's answer (``profile.consent.marketing`` in CEL; the API's ``consent``)."""
        return {name: self.consents(st, name) for name in self.rules.purposes}

    def profile(self, st: ProfileState, needs: Refs | None, as_of: int) -> dict[str, Any]:
        """The ``profile`` variable as of ``as_of`` with only the members ``needs`` lists."""
        names = PROFILE_FIELDS if needs is None else needs.keys()
        out: dict[str, Any] = {}
        for name in names:
            subs = None if needs is None else needs.get(name)
            if name == "traits":
                keys = st.traits.keys() if subs is None else (k for k in subs if st.trait_text(k) is not None)
                out[name] = {k: st.trait(k) for k in keys}
            elif name == "agg":
                keys = self.rules.aggregates.keys() if subs is None else subs
                out[name] = {k: self.aggregate(st, k, as_of) for k in keys if k in self.rules.aggregates}
            elif name == "tags":
                out[name] = st.active_tags(as_of)
            elif name == "score":
                out[name] = self.score(st, as_of)
            elif name == "tier":
                out[name] = self.tier(st, as_of)
            elif name == "first_seen":
                out[name] = st.first_seen
            elif name == "last_seen":
                out[name] = st.last_seen
            elif name == "last_interaction":
                out[name] = st.last_interaction
            elif name == "consent":
                out[name] = self.consent(st)
        return out

    def snapshot(self, st: ProfileState, as_of: int) -> dict[str, Any]:
        """Everything about a profile as of a time (``ProfileStore.get_profile``)."""
        view = self.profile(st, None, as_of)
        return {
            "oneid": st.oneid,
            "as_of": as_of,
            "first_seen": st.first_seen,
            "last_seen": st.last_seen,
            "last_interaction": st.last_interaction,
            "traits": view["traits"],
            "aggregates": view["agg"],
            "tags": view["tags"],
            "score": view["score"],
            "tier": view["tier"],
            "consent": view["consent"],
        }


def _key_chars(key: tuple[Any, ...]) -> int:
    """Characters of text in a cache key (flat, or of (name, text) pairs)."""
    total = 0
    for part in key:
        for item in part if isinstance(part, tuple) else (part,):
            total += len(item) if isinstance(item, str) else 0
    return total
