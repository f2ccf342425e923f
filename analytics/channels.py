"""Touch classification rules: which events are marketing touches, and of which channel.

The rules are data (``default_channels.yaml``, or the operator's copy), read once into frozen
dataclasses and compiled to one SQL ``CASE`` over the features ``analytics.touches`` extracts
from each event, so classifying ten million events is one scan, not a Python call per event.
Every mistake in the file raises :class:`ConfigError` naming the dotted key.

A rule is a channel and conditions on features; each condition is a list of patterns (``*`` and
``?`` wildcards, compared lower-case); the first rule whose every condition matches names the
channel, and the channel ``none`` means "not a touch". ``referrer`` matches hosts and their
subdomains, plus two words: ``none`` (no referrer) and ``internal`` (the page's own host or one
of ``internal_hosts``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from profiles.durations import parse_duration
from touchstream.text import NAME
from touchstream.yamlcheck import YamlReader, read_yaml

WHAT = "channel rules"
DEFAULT_CHANNELS_PATH = Path(__file__).with_name("default_channels.yaml")
NOT_A_TOUCH = "none"
#: What a condition may test; ``analytics.touches`` extracts each (lower-case, "" when absent).
FEATURES = ("utm_source", "utm_medium", "referrer", "event", "type", "source", "context_channel")
#: The special values of the ``referrer`` condition.
NO_REFERRER, INTERNAL = "none", "internal"
DEFAULT_SESSION_GAP_MS = 30 * 60_000
#: Features most events leave empty (no campaign, no referrer, no channel in the context).
_USUALLY_EMPTY = ("utm_source", "utm_medium", "referrer", "context_channel")
_TOP_KEYS = frozenset({"version", "session_gap", "internal_hosts", "rules"})
_MAX_PATTERN = 200


@dataclass(frozen=True)
class Rule:
    """One line of the rules: ``channel`` when every condition matches (``none``: not a touch)."""

    channel: str
    conditions: tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True)
class ChannelRules:
    """The ordered rules, the hosts that count as one's own, and the gap that ends a visit."""

    rules: tuple[Rule, ...]
    internal_hosts: tuple[str, ...] = ()
    session_gap_ms: int = DEFAULT_SESSION_GAP_MS

    @property
    def channels(self) -> tuple[str, ...]:
        """Every channel a rule can name, in rule order."""
        return tuple(dict.fromkeys(r.channel for r in self.rules if r.channel != NOT_A_TOUCH))

    def sql_case(self, features: dict[str, str]) -> str:
        """A SQL expression giving each row's channel as its position in :attr:`channels` (NULL:
        not a touch; a small integer is cheaper than a name to carry through millions of rows);
        ``features`` maps each name of :data:`FEATURES` and ``page_host`` to the column holding
        it (lower-case text, ``''`` when absent).

        Most events carry no campaign, referrer or channel: for them the rules are first decided
        on those features being empty, leaving a few tests on the event's name, type and source
        (at 10M events the full chain cost a third of the scan)."""
        full = self._whens(features, ())
        if not full:
            return "CAST(NULL AS SMALLINT)"
        empty = " AND ".join(f"{features[name]} = ''" for name in _USUALLY_EMPTY)
        plain = self._whens(features, _USUALLY_EMPTY)
        plain_case = f"CASE {' '.join(plain)} ELSE NULL END" if plain else "NULL"
        full_case = f"CASE {' '.join(full)} ELSE NULL END"
        return f"CAST(CASE WHEN {empty} THEN ({plain_case}) ELSE ({full_case}) END AS SMALLINT)"

    def _whens(self, features: dict[str, str], empty: tuple[str, ...]) -> list[str]:
        """``WHEN test THEN channel`` per rule; a condition on a feature of ``empty`` is decided
        here (a rule it fails is left out, the rules after one that needs nothing else too)."""
        index = {channel: i for i, channel in enumerate(self.channels)}
        whens = []
        for rule in self.rules:
            if not all(_holds_when_empty(name, patterns)
                       for name, patterns in rule.conditions if name in empty):
                continue
            test = " AND ".join(self._condition(name, patterns, features)
                                for name, patterns in rule.conditions if name not in empty)
            then = "NULL" if rule.channel == NOT_A_TOUCH else str(index[rule.channel])
            whens.append(f"WHEN {test or 'true'} THEN {then}")
            if not test:
                break
        return whens

    def _condition(self, name: str, patterns: tuple[str, ...], features: dict[str, str]) -> str:
        """One condition, naming its column as few times as it can: the features are expressions
        the optimizer may inline, so each mention can cost a regular expression."""
        column = features[name]
        host = name == "referrer"
        special = (NO_REFERRER, INTERNAL) if host else ()
        plain = [p for p in patterns if not _is_glob(p) and p not in special]
        globs = [p for p in patterns if _is_glob(p)]
        tests = []
        if host and (plain or globs):  # a host matches its subdomains too
            tests.append(_regex_test(column, _host_regex([*plain, *globs]), [*plain, *globs], host=True))
        else:
            if plain:
                tests.append(f"{column} IN ({', '.join(_literal(p) for p in plain)})")
            if globs:
                tests.append(_regex_test(column, "|".join(map(_glob_regex, globs)), globs, host=False))
        if NO_REFERRER in patterns and host:
            tests.append(f"{column} = ''")
        if INTERNAL in patterns and host:
            own = f"{column} = {features['page_host']}"
            if self.internal_hosts:
                own += f" OR regexp_full_match({column}, {_literal(_host_regex(self.internal_hosts))})"
            tests.append(f"({column} <> '' AND ({own}))")
        return "(" + " OR ".join(tests) + ")"


def _holds_when_empty(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether a condition holds for an empty value: ``none`` for a referrer, or a pattern that
    is empty or wildcards only (never ``internal``, which needs a host)."""
    if name == "referrer" and NO_REFERRER in patterns:
        return True
    return any(set(p) <= {"*"} for p in patterns if not (name == "referrer" and p == INTERNAL))


def _regex_test(column: str, regex: str, patterns: Sequence[str], *, host: bool) -> str:
    """``regexp_full_match`` behind a test every match passes: a pattern's text before its first
    wildcard starts the value, or the value is not empty. Most values are empty (no campaign, no
    referrer): at 10M events, a regular expression each cost more than all the other tests."""
    test = f"regexp_full_match({column}, {_literal(regex)})"
    if any(set(p) <= {"*"} for p in patterns):  # matches the empty value: nothing to rule out
        return test
    prefixes = list(dict.fromkeys(re.split(r"[*?]", p, maxsplit=1)[0] for p in patterns))
    if host or not all(prefixes):  # a host may be any subdomain: only its end is known
        return f"({column} <> '' AND {test})"
    starts = " OR ".join(f"starts_with({column}, {_literal(p)})" for p in prefixes)
    return f"(({starts}) AND {test})"


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?")


def _glob_regex(pattern: str) -> str:
    """``*`` any run of characters, ``?`` one, everything else itself."""
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


def _host_regex(patterns: Sequence[str]) -> str:
    """Hosts matching any pattern, or a subdomain of one."""
    return "(?:.*\\.)?(?:" + "|".join(_glob_regex(p) for p in patterns) + ")"


def _literal(text: str) -> str:
    """A SQL string literal (standard SQL: only the quote is special)."""
    return "'" + text.replace("'", "''") + "'"


class _Reader(YamlReader):
    def patterns(self, value: Any, key: str) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value:
            raise self.fail(key, "must be a non-empty list of values")
        out = []
        for i, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise self.fail(f"{key}[{i}]", f"must be text, got {type(item).__name__}")
            text = str(item).strip().lower()
            if len(text) > _MAX_PATTERN:
                raise self.fail(f"{key}[{i}]", f"must be at most {_MAX_PATTERN} characters")
            out.append(text)
        return tuple(dict.fromkeys(out))

    def rule(self, value: Any, key: str) -> Rule:
        spec = self.mapping(value, key, frozenset({"channel", *FEATURES}))
        channel = spec.get("channel")
        if not isinstance(channel, str) or not NAME.match(channel):
            raise self.fail(f"{key}.channel", f"must be a name like paid_search, got {channel!r}")
        conditions = tuple((name, self.patterns(spec[name], f"{key}.{name}"))
                           for name in FEATURES if name in spec)
        return Rule(channel, conditions)


def parse_channel_rules(data: Any, source: str = "<memory>") -> ChannelRules:
    """Rules from parsed YAML; ConfigError naming the key for any mistake."""
    reader = _Reader(WHAT, source)
    top = reader.mapping(data, "", _TOP_KEYS)
    if top.get("version", 1) != 1:
        raise reader.fail("version", f"must be 1, got {top.get('version')!r}")
    raw_rules = top.get("rules")
    if not isinstance(raw_rules, list):
        raise reader.fail("rules", "must be a list of rules")
    rules = tuple(reader.rule(r, f"rules[{i}]") for i, r in enumerate(raw_rules))
    hosts = reader.patterns(top["internal_hosts"], "internal_hosts") if top.get("internal_hosts") else ()
    gap = DEFAULT_SESSION_GAP_MS
    if "session_gap" in top:
        try:
            gap = parse_duration(top["session_gap"])
        except ValueError as exc:
            raise reader.fail("session_gap", str(exc)) from None
    return ChannelRules(rules, hosts, gap)


def load_channel_rules(path: str | Path | None = None) -> ChannelRules:
    """The rules of ``path`` (default: the shipped ``default_channels.yaml``)."""
    source = Path(path) if path else DEFAULT_CHANNELS_PATH
    return parse_channel_rules(read_yaml(source, WHAT), str(source))

