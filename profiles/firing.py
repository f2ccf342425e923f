"""Firing a trigger: consent, cooldown and idempotency as known here, then a ``fire`` op for Redis.

Redis checks cooldown and idempotency again inside ``apply`` (another worker may have fired
the same key since the profile was read); only the triggers it confirms reach the topic. The
record built here is kept in :attr:`Firing.pending` under the op's index, so the store can
return exactly the confirmed ones.
"""

from __future__ import annotations

from typing import Any

from profiles.evaluation import Evaluator, safe_context
from profiles.facts import Facts
from profiles.result import BatchResult
from profiles.rules.model import Rules, TriggerRule
from profiles.state import ProfileState
from profiles.triggers import records


class Firing:
    """Turns a trigger that matched into a record and a ``fire`` op (one batch)."""

    def __init__(
        self, rules: Rules, facts: Facts, evaluator: Evaluator, result: BatchResult, now_ms: int
    ) -> None:
        self.rules = rules
        self.facts = facts
        self.evaluator = evaluator
        self.result = result
        self.now_ms = now_ms
        self.pending: list[dict[str, Any]] = []  # triggers sent to Redis, by op index

    def allows(self, st: ProfileState, rule: TriggerRule, as_of: int, values: dict[str, Any]) -> bool:
        """The ``if:`` of a trigger that fires without an event (profile only); adds its ``values``."""
        if rule.when is None and not rule.values:
            return True
        ctx = safe_context({"profile": self.facts.profile(st, None, as_of)})
        if rule.when is not None and not self.evaluator.test(rule.when, ctx, f"triggers.{rule.name}"):
            return False
        values.update(self.evaluator.values(rule, ctx))
        return True

    def fire(
        self,
        st: ProfileState,
        rule: TriggerRule,
        *,
        ref: str,
        event_time: int,
        message_id: str | None,
        values: dict[str, Any],
        fired_at: int | None = None,
    ) -> None:
        """Consent, cooldown and idempotency as known here; Redis checks the last two again.

        ``ref`` is what makes this firing unique (its idempotency key is derived from it).
        """
        if rule.purpose is not None and not self.facts.consents(st, rule.purpose):
            self.result.suppressed_marketing += 1
            return
        until = st.cooldowns.get(rule.name)
        if until is not None and event_time < until:
            self.result.suppressed_cooldown += 1
            return
        record = records.build(
            rule=rule.name,
            oneid=st.oneid,
            ref=ref,
            event_time=event_time,
            fired_at=self.now_ms if fired_at is None else fired_at,
            message_id=message_id or "",
            marketing=rule.marketing,
            values=values,
        )
        if not message_id:
            record["message_id"] = record["idempotency_key"]
        field_name = records.key_field(record["idempotency_key"])
        if field_name in st.fired:
            self.result.duplicates += 1
            return
        index = len(self.pending)
        self.pending.append(record)
        st.fire(
            field_name,
            rule.name,
            event_time + rule.cooldown_ms if rule.cooldown_ms else 0,
            event_time,
            event_time + self.rules.options.idempotency_ttl_ms,
            records.history_entry(record),
            index,
        )
