"""Hot reload: the rules in force, replaced when the file changes and only by rules that load.

A reload that cannot be read or parsed keeps every rule in force; one whose rules are partly
rejected uses the good ones and keeps the previous version of each rejected rule
(:func:`profiles.rules.load.load_rules`). Each new :class:`Rules` starts with empty caches.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

from profiles.exceptions import RuleIssue, RulesError
from profiles.rules.load import load_rules_file
from profiles.rules.model import Rules

log = logging.getLogger(__name__)

DEFAULT_RULES_PATH = Path(__file__).parent.parent / "default_rules.yaml"


class RuleSet:
    """The rules in force, reloaded when the file's mtime (or size) changes.

    :meth:`current` stats the file at most every ``check_every_s`` seconds. A reload that
    cannot be read or parsed keeps every rule in force; one whose rules are partly rejected
    uses the good ones and keeps the previous version of each rejected rule. The first load
    must succeed as a file (a :class:`RulesError` otherwise); rejected rules are only logged
    and listed in :attr:`issues` unless ``strict``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str] = DEFAULT_RULES_PATH,
        *,
        check_every_s: float = 1.0,
        strict: bool = False,
    ) -> None:
        self.path = Path(path)
        self.check_every_s = check_every_s
        self.version = 1
        self.last_reload_error: str | None = None
        self._lock = threading.Lock()
        self._stamp = self._stat()
        self._rules = load_rules_file(self.path, strict=strict)
        self._checked = time.monotonic()

    @classmethod
    def static(cls, rules: Rules) -> RuleSet:
        """A RuleSet that never reloads (tests, benchmarks, rules built from text)."""
        self = cls.__new__(cls)
        self.path = Path(rules.source)
        self.check_every_s = float("inf")
        self.version = 1
        self.last_reload_error = None
        self._lock = threading.Lock()
        self._stamp = None
        self._rules = rules
        self._checked = time.monotonic()
        return self

    @property
    def issues(self) -> list[RuleIssue]:
        return self._rules.issues

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def current(self) -> Rules:
        """The rules in force, after a reload if the file changed since the last check."""
        if time.monotonic() - self._checked >= self.check_every_s:
            self.reload()
        return self._rules

    def reload(self, *, force: bool = False) -> bool:
        """Reload now if the file changed (or ``force``); True when new rules took effect."""
        with self._lock:
            self._checked = time.monotonic()
            stamp = self._stat()
            if stamp is None:
                self.last_reload_error = f"{self.path}: missing; keeping the rules in force"
                log.error("%s", self.last_reload_error)
                return False
            if stamp == self._stamp and not force:
                return False
            self._stamp = stamp
            try:
                rules = load_rules_file(self.path, previous=self._rules)
            except RulesError as exc:
                self.last_reload_error = f"{exc}; keeping the rules in force"
                log.error("rules reload failed: %s", self.last_reload_error)
                return False
            self._rules = rules
            self.version += 1
            self.last_reload_error = None
            log.info(
                "rules reloaded from %s (version %d, %d rules, %d rejected)",
                self.path,
                self.version,
                rules.rule_count,
                len(rules.issues),
            )
            return True
