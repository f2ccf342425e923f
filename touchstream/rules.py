"""Which rules files are in force: the settings name them, the packages ship the defaults."""

from __future__ import annotations

from identity.rules import IdentityRules, load_rules
from profiles.rules import DEFAULT_RULES_PATH, RuleSet
from touchstream.settings import Settings


def identity_rules(settings: Settings) -> IdentityRules:
    """Identity merge rules (priority, limits, blocked values); read once at start."""
    return load_rules(settings.identity_rules_path or None)


def profile_rules(settings: Settings) -> RuleSet:
    """Profile rules (aggregates, tags, scores, triggers), hot-reloaded when the file changes."""
    return RuleSet(settings.profile_rules_path or DEFAULT_RULES_PATH)
