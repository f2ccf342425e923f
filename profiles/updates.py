"""What an event changes in a profile besides triggers: traits, aggregates, behaviour points, tags.

Each change goes through a :class:`ProfileState` op (applied to the copy now, replayed by
``profiles/lua/apply.lua`` atomically later). Tags are evaluated after aggregates and points, on the
profile as of the event, so ``if: profile.agg.x >= 3`` counts this event too.
"""

from __future__ import annotations

from typing import Any

from profiles import aggregates as agg
from profiles import jsonsafe
from profiles.evaluation import Evaluator, Moment
from profiles.events import EventView
from profiles.result import BatchResult
from profiles.rules.model import Rules
from profiles.state import ProfileState
from profiles.triggers import records

MAX_TAG_CHARS = 60  # a tag named by an expression (interested_in_<feature>) longer than this is skipped


class ProfileUpdates:
    """Applies one event's traits, aggregates, points and tags (one batch)."""

    def __init__(
        self, rules: Rules, evaluator: Evaluator, result: BatchResult, *, max_traits_per_profile: int
    ) -> None:
        self.rules = rules
        self.evaluator = evaluator
        self.result = result
        self.max_traits_per_profile = max_traits_per_profile

    def traits(self, st: ProfileState, view: EventView, ts: int) -> None:
        """Identify traits, latest event time wins; new keys past the per-profile cap are dropped."""
        keep = self.rules.options.keep_traits
        cap = self.max_traits_per_profile
        for key, value in view.traits.items():
            if keep is not None and key not in keep:
                continue
            if key not in st.traits and len(st.traits) >= cap:
                self.result.traits_dropped += 1
                continue
            st.set_trait(key, ts, jsonsafe.dumps(value))

    def consent(self, st: ProfileState, view: EventView, ts: int) -> None:
        """A consent event (``options.consent_events``): ``properties`` name purposes with a yes
        or no, flat or under ``purposes``; each answer is kept as the purpose's trait, so it
        holds from this event on (later events and timers see it)."""
        props = view.properties
        nested = props.get("purposes")
        answers: dict[str, Any] = nested if isinstance(nested, dict) else props
        for name, spec in self.rules.purposes.items():
            answer = records.consent_answer(answers.get(name))
            if answer is not None:
                st.set_trait(spec.trait, ts, jsonsafe.dumps(answer))

    def aggregates_and_points(self, m: Moment) -> None:
        """Add the event to every aggregate it matches; all its behaviour points as one op."""
        st, ts, lazy, evaluator = m.st, m.ts, m.lazy, self.evaluator
        for a in m.cands.aggregates:
            rule = f"aggregates.{a.name}"
            if not evaluator.where(a.where, lazy, rule):
                continue
            if a.op == "count":
                value: Any = 1
            else:
                value = evaluator.on_event(a.value, lazy, rule) if a.value else None
                if value is None or (a.kind in ("n", "mn", "mx") and not agg.is_amount(value)):
                    continue
            st.add(
                a.name, a.sid, a.kind, agg.bucket_index(ts, a.bucket_ms), agg.contribution(a.kind, value, ts)
            )
        score = self.rules.score
        if score is not None and m.cands.points:
            points = sum(
                p.points
                for p in m.cands.points
                if evaluator.where(p.where, lazy, f"score.behaviour.{p.rule}")
            )
            if points:
                st.add_points(points, ts, score.half_life_ms)  # one op for all of the event's points

    def tags(self, m: Moment) -> None:
        """Tag rules of the event, in file order; a new tag is visible to the rules after it."""
        if not m.cands.tags:
            return
        st, ts, lazy, evaluator = m.st, m.ts, m.lazy, self.evaluator
        for t in m.cands.tags:
            rule = f"tags.{t.rule}"
            if not evaluator.where(t.where, lazy, rule):
                continue
            if t.when is not None and not evaluator.test(t.when, m.profile_ctx(), rule):
                continue
            tag = t.tag
            if t.name is not None:
                produced = evaluator.on_event(t.name, lazy, rule)
                tag = produced if isinstance(produced, str) and 0 < len(produced) <= MAX_TAG_CHARS else None
            if tag:
                was_active = tag in st.tags and (st.tags[tag] == 0 or st.tags[tag] > ts)
                st.tag(tag, ts + t.ttl_ms if t.ttl_ms else 0)
                if not was_active:
                    m.profile_changed()  # later rules see the new tag
