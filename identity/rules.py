"""OneID merge rules: the YAML file read once into frozen dataclasses.

Rules are data, not code, so an operator can tighten a limit or block a placeholder value
without a release. Every mistake in the file raises :class:`ConfigError` naming the dotted
key (``types.email.max``), because a silently ignored limit would merge people.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from identity import layout
from touchstream.text import NAME
from touchstream.yamlcheck import YamlReader, read_yaml

WHAT = "identity rules"
DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.yaml")
#: Same rule as identity/identifiers.py: type names are keys in Redis and field prefixes.
TYPE_NAME = NAME
DAY_MS = 24 * 3600 * 1000
MAX_INDEX_BUCKETS = 1 << 20

_TOP_KEYS = frozenset(
    {"version", "person_key", "priority", "unknown_types", "types", "blocked", "frequency_guard", "storage",
     "max_members", "anonymous_types"}
)
_TYPE_KEYS = frozenset({"max", "window_days", "repoint"})
_BLOCK_KEYS = frozenset({"values", "patterns"})
_GUARD_KEYS = frozenset({"max_persons", "types", "window_days"})
_STORAGE_KEYS = frozenset({"index_buckets"})
_UNKNOWN_MODES = ("reject", "link")
DEFAULT_MAX_MEMBERS = 200
DEFAULT_GUARD_WINDOW_DAYS = 90
#: Types that say nothing about who a person is: a profile holding only these is collectable.
DEFAULT_ANONYMOUS_TYPES = ("anonymous_id", "device_id")


@dataclass(frozen=True)
class TypeRule:
    """How one identifier type links: rank 0 is the highest priority."""

    name: str
    rank: int
    max_links: int | None = None
    window_ms: int | None = None
    repoint: bool = False
    max_persons: int = 3
    blocked_values: frozenset[str] = frozenset()
    blocked_pattern: BlockedPattern | None = None

    def is_blocked(self, value: str) -> bool:
        """True when ``value`` is a placeholder that must never link anyone."""
        if value in self.blocked_values:
            return True
        return self.blocked_pattern is not None and self.blocked_pattern.search(value)


@dataclass(frozen=True)
class IdentityRules:
    """Validated merge rules; build with :func:`load_rules` or :func:`parse_rules`."""

    person_key: str
    types: tuple[TypeRule, ...]
    unknown_types: str = "reject"
    default_max_persons: int = 3
    any_blocked_values: frozenset[str] = frozenset()
    any_blocked_pattern: BlockedPattern | None = None
    index_buckets: int = 4096
    max_members: int = DEFAULT_MAX_MEMBERS
    guard_window_ms: int = DEFAULT_GUARD_WINDOW_DAYS * DAY_MS
    anonymous_types: frozenset[str] = frozenset(DEFAULT_ANONYMOUS_TYPES)
    source: str = "<rules>"
    _by_name: Mapping[str, TypeRule] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {rule.name: rule for rule in self.types})

    @property
    def priority(self) -> tuple[str, ...]:
        return tuple(rule.name for rule in self.types)

    @cached_property
    def ranks(self) -> Mapping[str, int]:
        """Listed type -> rank (0 strongest): how anything outside identity ranks identifiers,
        so the priority is written only in the rules file."""
        return {rule.name: rule.rank for rule in self.types}

    def rule(self, type_: str) -> TypeRule | None:
        """The rule of ``type_``; for an unlisted type, a limit-free lowest-priority rule when
        ``unknown_types`` is ``link``, else None (the type is not used for identity)."""
        found = self._by_name.get(type_)
        if found is not None or self.unknown_types != "link" or not TYPE_NAME.match(type_):
            return found
        return self._unknown_rule(type_)

    def _unknown_rule(self, type_: str) -> TypeRule:
        cache: dict[str, TypeRule] = self.__dict__.setdefault("_unknown_cache", {})
        rule = cache.get(type_)
        if rule is None:
            rule = TypeRule(
                name=type_,
                rank=len(self.types),
                max_persons=self.default_max_persons,
                blocked_values=self.any_blocked_values,
                blocked_pattern=self.any_blocked_pattern,
            )
            cache[type_] = rule
        return rule

    @cached_property
    def script_config(self) -> str:
        """The rules the Lua script needs, as compact JSON (built once, sent with every batch)."""
        per_type = [
            [
                rule.name,
                -1 if rule.max_links is None else rule.max_links,
                -1 if rule.window_ms is None else rule.window_ms,
                1 if rule.repoint else 0,
                rule.max_persons,
            ]
            for rule in self.types
        ]
        return json.dumps(
            {
                layout.C_PERSON_KEY: self.person_key,
                layout.C_TYPES: per_type,
                layout.C_DEFAULT_PERSONS: self.default_max_persons,
                layout.C_MAX_MEMBERS: self.max_members,
                layout.C_GUARD_MS: self.guard_window_ms,
                layout.C_ANONYMOUS: sorted(self.anonymous_types),
            },
            separators=(",", ":"),
        )


def load_rules(path: str | Path | None = None) -> IdentityRules:
    """Read and validate a rules file (default: ``identity/default_rules.yaml``)."""
    source = Path(path) if path is not None else DEFAULT_RULES_PATH
    return parse_rules(read_yaml(source, WHAT), source=str(source))


def parse_rules(data: Any, source: str = "<rules>") -> IdentityRules:
    """Validate a rules mapping (the parsed YAML); a wrong key raises ConfigError naming it."""
    return _Parser(source).parse(data)


class _Parser(YamlReader):
    def __init__(self, source: str) -> None:
        super().__init__(WHAT, source)

    def mapping(self, value: Any, key: str, allowed: frozenset[str] | None = None, *,
                optional: bool = True) -> Mapping[str, Any]:
        """Every section of the rules file may be left out."""
        return super().mapping(value, key, allowed, optional=optional)

    def positive_int(self, value: Any, key: str, maximum: int | None = None) -> int:
        return self.whole(value, key, 1, maximum)

    def listed(self, name: str, key: str, names: list[str]) -> None:
        """A setting for a type the priority does not list would be ignored: refuse it instead."""
        if name not in names:
            raise self.fail(key, f"{name!r} is not listed in priority")

    def type_name(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not TYPE_NAME.match(value):
            raise self.fail(key, f"must be an identifier type name ([a-z][a-z0-9_]*), got {value!r}")
        return value

    def parse(self, data: Any) -> IdentityRules:
        top = self.mapping(data, "", _TOP_KEYS)
        if not top:
            raise self.fail("priority", "missing (the file is empty)")
        version = top.get("version", 1)
        if version != 1:
            raise self.fail("version", f"only version 1 is understood, got {version!r}")

        priority = top.get("priority")
        if not isinstance(priority, list) or not priority:
            raise self.fail("priority", "must be a non-empty list of identifier types")
        names: list[str] = []
        for i, item in enumerate(priority):
            name = self.type_name(item, f"priority[{i}]")
            if name in names:
                raise self.fail(f"priority[{i}]", f"{name!r} is listed twice")
            names.append(name)

        person_key = self.type_name(top.get("person_key", "user_id"), "person_key")
        if person_key not in names:
            raise self.fail("person_key", f"{person_key!r} must be listed in priority")

        unknown = top.get("unknown_types", "reject")
        if unknown not in _UNKNOWN_MODES:
            raise self.fail("unknown_types", f"must be one of {list(_UNKNOWN_MODES)}, got {unknown!r}")

        limits = self.limits(top.get("types"), names, person_key)
        blocked = self.blocked(top.get("blocked"), names)
        default_persons, persons, guard_window_ms = self.guard(top.get("frequency_guard"), names, person_key)
        max_members = self.positive_int(top.get("max_members", DEFAULT_MAX_MEMBERS), "max_members")
        anonymous = self.anonymous(top.get("anonymous_types"), names, person_key)
        storage = self.mapping(top.get("storage"), "storage", _STORAGE_KEYS)
        buckets = self.positive_int(
            storage.get("index_buckets", 4096), "storage.index_buckets", MAX_INDEX_BUCKETS
        )

        any_values, any_patterns = blocked.get("any", (frozenset(), ()))
        rules = []
        for rank, name in enumerate(names):
            max_links, window_ms, repoint = limits.get(name, (None, None, False))
            values, patterns = blocked.get(name, (frozenset(), ()))
            rules.append(
                TypeRule(
                    name=name,
                    rank=rank,
                    max_links=max_links,
                    window_ms=window_ms,
                    repoint=repoint,
                    max_persons=persons.get(name, default_persons),
                    blocked_values=values | any_values,
                    blocked_pattern=_combine(any_patterns + patterns),
                )
            )
        return IdentityRules(
            person_key=person_key,
            types=tuple(rules),
            unknown_types=unknown,
            default_max_persons=default_persons,
            any_blocked_values=any_values,
            any_blocked_pattern=_combine(any_patterns),
            index_buckets=buckets,
            max_members=max_members,
            guard_window_ms=guard_window_ms,
            anonymous_types=anonymous,
            source=self.source,
        )

    def limits(
        self, value: Any, names: list[str], person_key: str
    ) -> dict[str, tuple[int | None, int | None, bool]]:
        out: dict[str, tuple[int | None, int | None, bool]] = {}
        for name, spec in self.mapping(value, "types").items():
            key = f"types.{name}"
            if name not in names:
                raise self.fail(key, "type is not listed in priority")
            body = self.mapping(spec, key, _TYPE_KEYS)
            max_links = None if body.get("max") is None else self.positive_int(body["max"], f"{key}.max")
            window_ms = None
            if body.get("window_days") is not None:
                window_ms = self.days(body["window_days"], f"{key}.window_days")
                if max_links is None:
                    raise self.fail(f"{key}.window_days", "needs a max to count against")
            repoint = body.get("repoint", False)
            if not isinstance(repoint, bool):
                raise self.fail(f"{key}.repoint", f"must be true or false, got {repoint!r}")
            if repoint and name == person_key:
                raise self.fail(f"{key}.repoint", "the person_key cannot move between people")
            out[name] = (max_links, window_ms, repoint)
        if out.get(person_key, (None,))[0] is None:
            raise self.fail(f"types.{person_key}.max", "the person_key needs a max (normally 1)")
        return out

    def blocked(self, value: Any, names: list[str]) -> dict[str, tuple[frozenset[str], tuple[str, ...]]]:
        out: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {}
        for name, spec in self.mapping(value, "blocked").items():
            key = f"blocked.{name}"
            if name != "any":
                self.type_name(name, key)
                self.listed(name, key, names)
            body = self.mapping(spec, key, _BLOCK_KEYS)
            values = body.get("values") or []
            patterns = body.get("patterns") or []
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise self.fail(f"{key}.values", "must be a list of strings")
            if not isinstance(patterns, list):
                raise self.fail(f"{key}.patterns", "must be a list of regular expressions")
            for i, pattern in enumerate(patterns):
                if not isinstance(pattern, str):
                    raise self.fail(f"{key}.patterns[{i}]", f"must be a string, got {pattern!r}")
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise self.fail(f"{key}.patterns[{i}]", f"not a valid regex ({exc})") from None
            out[name] = (frozenset(values), tuple(patterns))
        return out

    def days(self, value: Any, key: str) -> int:
        """A positive number of days, in ms."""
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or value > 36500:
            raise self.fail(key, f"must be a number of days > 0 (at most 36500), got {value!r}")
        return int(value * DAY_MS)

    def anonymous(self, value: Any, names: list[str], person_key: str) -> frozenset[str]:
        """Types whose profiles are collected when idle; unset: the default ones in priority."""
        if value is None:
            return frozenset(t for t in DEFAULT_ANONYMOUS_TYPES if t in names)
        if not isinstance(value, list):
            raise self.fail("anonymous_types", "must be a list of identifier types")
        for i, name in enumerate(value):
            key = f"anonymous_types[{i}]"
            self.type_name(name, key)
            if name not in names:
                raise self.fail(key, f"{name!r} is not listed in priority")
            if name == person_key:
                raise self.fail(key, "the person_key identifies a person; it cannot be anonymous")
        return frozenset(value)

    def guard(self, value: Any, names: list[str], person_key: str) -> tuple[int, dict[str, int], int]:
        body = self.mapping(value, "frequency_guard", _GUARD_KEYS)
        default = self.positive_int(body.get("max_persons", 3), "frequency_guard.max_persons")
        days = body.get("window_days", DEFAULT_GUARD_WINDOW_DAYS)
        window_ms = self.days(days, "frequency_guard.window_days")
        per_type: dict[str, int] = {}
        for name, limit in self.mapping(body.get("types"), "frequency_guard.types").items():
            key = f"frequency_guard.types.{name}"
            self.type_name(name, key)
            self.listed(name, key, names)
            if name == person_key:
                raise self.fail(key, "the person_key is what the guard counts; it cannot be guarded")
            per_type[name] = self.positive_int(limit, key)
        return default, per_type, window_ms


_BACKREF = re.compile(r"\\[1-9]|\(\?P=")


def _combine(patterns: tuple[str, ...]) -> BlockedPattern | None:
    """Patterns folded into as few regexes as possible, so a value costs about one search.

    Patterns with back-references keep their own regex: in one alternation their group
    numbers would shift and match something else.
    """
    if not patterns:
        return None
    plain = [p for p in patterns if not _BACKREF.search(p)]
    alone = [re.compile(p, re.IGNORECASE) for p in patterns if _BACKREF.search(p)]
    if plain:
        alone.insert(0, re.compile("|".join(f"(?:{p})" for p in plain), re.IGNORECASE))
    return BlockedPattern(tuple(alone))


@dataclass(frozen=True)
class BlockedPattern:
    """Compiled blocked-value regexes of one type."""

    regexes: tuple[re.Pattern[str], ...]

    def search(self, value: str) -> bool:
        return any(regex.search(value) is not None for regex in self.regexes)
