"""The rules file: aggregates, tags, a lead score, tiers, triggers and segments, with CEL conditions.

Loading compiles every expression once, checks what it reads, and indexes the rules by the
event they listen to (``on:``), so an event only evaluates rules that can fire for it. A bad
rule is rejected with its name and reason (:attr:`Rules.issues`) and the others load;
:class:`RuleSet` reloads the file when it changes and never lets a broken edit replace the
rules in force. The format is documented in ``profiles/default_rules.yaml``.

    model.py     the compiled config: frozen dataclasses (Rules, TriggerRule, ...)
    checks.py    reading one YAML value (durations, numbers, on:, CEL) or rejecting the rule
    compile.py   parsed YAML -> model, section by section (triggers with their kind's help)
    load.py      YAML 1.2 text/file -> Rules, keeping previous versions of rejected rules
    index.py     rules indexed by event type/name (Candidates)
    monotone.py  which way time moves a segment's condition (a non-member's timer or none)
    runtime.py   run-time caches of one Rules (index, error counts, attribute points)
    reload.py    RuleSet: the rules in force, hot-reloaded

This module is the public face: other packages import from ``profiles.rules``. Modules
inside ``profiles`` import from the submodules: the trigger kinds (``profiles.triggers.kinds``)
use ``checks`` while this package is still loading. The trigger kinds a file may name are
``profiles.triggers.kinds.NAMES``.
"""

from __future__ import annotations

from profiles.rules.checks import EVENT_TYPES, MAX_RULE_NUMBER
from profiles.rules.compile import storage_id
from profiles.rules.index import Candidates
from profiles.rules.load import load_rules, load_rules_file
from profiles.rules.model import (
    AggregateRule,
    AttributeRule,
    EventKey,
    Options,
    PointsRule,
    Rules,
    ScoreSpec,
    SegmentRule,
    TagRule,
    TierSpec,
    TriggerRule,
)
from profiles.rules.reload import DEFAULT_RULES_PATH, RuleSet

__all__ = [
    "DEFAULT_RULES_PATH",
    "EVENT_TYPES",
    "MAX_RULE_NUMBER",
    "AggregateRule",
    "AttributeRule",
    "Candidates",
    "EventKey",
    "Options",
    "PointsRule",
    "RuleSet",
    "Rules",
    "ScoreSpec",
    "SegmentRule",
    "TagRule",
    "TierSpec",
    "TriggerRule",
    "load_rules",
    "load_rules_file",
    "storage_id",
]
