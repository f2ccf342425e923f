"""What evaluation learns while one set of rules is in force, kept out of the frozen config.

Each :class:`~profiles.rules.model.Rules` owns one :class:`RuleCaches`; a reload starts empty
ones, so nothing learnt under old rules leaks into new ones. Every cache is bounded by count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from profiles.rules.index import EventIndex


@dataclass
class RuleCaches:
    """The event index, error counts per rule, and attribute points per set of trait values."""

    index: EventIndex = field(default_factory=EventIndex)
    eval_errors: dict[str, int] = field(default_factory=dict)
    attribute_points: dict[tuple[Any, ...], float] = field(default_factory=dict)

    def count_error(self, rule: str) -> None:
        self.eval_errors[rule] = self.eval_errors.get(rule, 0) + 1
