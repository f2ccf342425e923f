"""What one batch (or one timer sweep) did: the counters the stage reports and the triggers fired."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class BatchResult:
    """What one batch did. ``triggers`` are the ones Redis confirmed (fired exactly once), and
    ``segments`` the segment entries and exits it recorded (``profiles/segments/``)."""

    triggers: list[dict[str, Any]] = field(default_factory=list)
    segments: list[dict[str, Any]] = field(default_factory=list)
    skipped_replayed: int = 0
    skipped_late: int = 0
    suppressed_marketing: int = 0
    suppressed_cooldown: int = 0
    duplicates: int = 0
    applied: int = 0
    profiles: int = 0
    rule_errors: int = 0
    stale_timers: int = 0
    skipped_invalid: int = 0
    traits_dropped: int = 0
    #: events refused because their OneID is erased: {oneid, message_id, timestamp} each
    erased: list[dict[str, Any]] = field(default_factory=list)
