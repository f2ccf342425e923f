"""What an attribution run credits: the conversion, the key (channel or campaign), the windows."""

from __future__ import annotations

from dataclasses import dataclass, field

from analytics.channels import ChannelRules, load_channel_rules
from analytics.touches import Conversion
from profiles.durations import DAY_MS

BY = ("channel", "campaign")
#: The row of conversions no touch preceded within the lookback: shown, never dropped.
NO_TOUCH = "(none)"


def _default_rules() -> ChannelRules:
    return load_channel_rules()


@dataclass(frozen=True)
class AttributionOptions:
    """``lookback_ms``: how long before a conversion a touch still counts (the conversion's own
    moment included). ``half_life_ms``: the time-decay model halves a touch's weight per this
    much time before the conversion's last touch."""

    conversion: Conversion = field(default_factory=Conversion)
    by: str = "channel"
    lookback_ms: int = 30 * DAY_MS
    half_life_ms: int = 7 * DAY_MS
    rules: ChannelRules = field(default_factory=_default_rules)

    def __post_init__(self) -> None:
        if self.by not in BY:
            raise ValueError(f"by must be one of {', '.join(BY)}, got {self.by!r}")
        if self.lookback_ms <= 0 or self.half_life_ms <= 0:
            raise ValueError("lookback and half-life must be positive")

    def key_sql(self, touch: str) -> str:
        """The credited key of a touch row ``touch``: its channel, or its campaign (a touch
        without one is its channel in parentheses, e.g. ``(organic_search)``)."""
        if self.by == "channel":
            return f"{touch}.channel"
        return f"coalesce({touch}.campaign, '(' || {touch}.channel || ')')"
