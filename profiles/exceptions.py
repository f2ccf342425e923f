"""Errors of the profiles package; all derive from the project's root error.

ConfigError (touchstream.errors)
 └── RulesError        a rules file has rejected rules; ``issues`` names each rule and why
"""

from __future__ import annotations

from dataclasses import dataclass

from touchstream.errors import ConfigError


@dataclass(frozen=True)
class RuleIssue:
    """One rejected rule: its qualified name (``tags.high_intent``) and the reason."""

    rule: str
    error: str

    def __str__(self) -> str:
        return f"{self.rule}: {self.error}"


class RulesError(ConfigError):
    """A rules file could not be used as a whole, or (strict loading) some rules were rejected."""

    def __init__(self, message: str, issues: list[RuleIssue] | None = None) -> None:
        self.issues = list(issues or [])
        detail = "; ".join(str(i) for i in self.issues)
        super().__init__(f"{message}: {detail}" if detail else message)
