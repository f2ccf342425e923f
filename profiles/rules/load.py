"""Loading a rules file: YAML 1.2 text -> :class:`Rules`, keeping previous versions on a reload.

A bad rule is rejected with its name and reason (:attr:`Rules.issues`) and the others load.
On a hot reload (``previous``) a rejected rule that existed before keeps its previous
version, so an edit with a typo never silently turns a running rule off.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from profiles.exceptions import RuleIssue, RulesError
from profiles.rules import checks
from profiles.rules.compile import Compiler
from profiles.rules.model import Rules

log = logging.getLogger(__name__)


class _Loader(yaml.SafeLoader):
    """YAML 1.2 booleans: only true/false, so ``on:`` stays the key "on" (YAML 1.1 reads True)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_rules(
    text: str, *, source: str = "<text>", previous: Rules | None = None, strict: bool = False
) -> Rules:
    """Compile a rules file. Raises :class:`RulesError` when the file as a whole is unusable
    (YAML error, not a mapping, unknown version) or, with ``strict``, when any rule is rejected.

    With ``previous`` (a hot reload), a rejected rule that existed before keeps its previous
    version, so an edit with a typo never silently turns a running rule off.
    """
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError) as exc:
        # PyYAML raises ValueError for dates like 2001-13-45, RecursionError for deep nesting
        raise RulesError(f"{source}: not valid YAML: {checks.one_line(exc)[:300]}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RulesError(f"{source}: the rules file must be a mapping of sections")
    if raw.get("version", 1) != 1:
        version = checks.short(raw.get("version"))
        raise RulesError(f"{source}: unsupported rules version {version} (expected 1)")
    rules = Compiler(raw, source).compile()
    if previous is not None and rules.issues:
        patched = copy.deepcopy(raw)
        kept = []
        for issue in rules.issues:
            old = _lookup(previous.raw, issue.rule)
            if old is not _MISSING and _assign(patched, issue.rule, copy.deepcopy(old)):
                kept.append(issue.rule)
        if kept:
            retry = Compiler(patched, source).compile()
            still_bad = {i.rule for i in retry.issues}
            issues = [
                RuleIssue(i.rule, i.error + ("" if i.rule in still_bad else " (previous version kept)"))
                for i in rules.issues
            ] + [i for i in retry.issues if i.rule not in {j.rule for j in rules.issues}]
            rules = replace(retry, issues=issues)
    for issue in rules.issues:
        log.error("rules %s: rejected %s", source, issue)
    if strict and rules.issues:
        raise RulesError(f"{source}: {len(rules.issues)} rule(s) rejected", rules.issues)
    return rules


def load_rules_file(path: str | os.PathLike[str], **kwargs: Any) -> Rules:
    """:func:`load_rules` of a UTF-8 file; an unreadable file is a :class:`RulesError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"{path}: cannot read the rules file: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise RulesError(f"{path}: the rules file is not UTF-8 text: {exc.reason}") from None
    return load_rules(text, source=str(path), **kwargs)


_MISSING = object()  # a rule the previous rules did not have


def _lookup(raw: dict[str, Any], dotted: str) -> Any:
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def _assign(raw: dict[str, Any], dotted: str, value: Any) -> bool:
    parts = dotted.split(".")
    node: Any = raw
    for part in parts[:-1]:
        if not isinstance(node, dict):
            return False
        node = node.setdefault(part, {})
    if not isinstance(node, dict):
        return False
    node[parts[-1]] = value
    return True
