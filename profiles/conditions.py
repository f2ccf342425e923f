"""CEL conditions of the rules file: compiled once, checked at load, evaluated on minimal contexts.

Turning Python values into CEL values costs about 1 µs per entry while running a compiled
program costs about 0.5 µs, so the expensive part of a rule is its context, not its logic.
Each condition therefore records which ``event``/``profile`` members it reads
(:class:`Needs`), and the engine builds contexts holding only those members.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import cel

# What an expression may read. Objects (second level is a free-form key) are marked.
EVENT_FIELDS = frozenset(
    {
        "type",
        "event",
        "name",
        "message_id",
        "timestamp",
        "anonymous_id",
        "user_id",
        "group_id",
        "source",
        "path",
        "url",
        "referrer",
        "title",
        "search",
        "segments",
        "session",
        "properties",
        "traits",
        "context",
        "identifiers",
    }
)
EVENT_OBJECTS = frozenset({"properties", "traits", "context"})
PROFILE_FIELDS = frozenset(
    {
        "traits",
        "agg",
        "tags",
        "score",
        "tier",
        "first_seen",
        "last_seen",
        "last_interaction",
        "consent",
    }
)
PROFILE_OBJECTS = frozenset({"traits", "agg"})
NOW = "now"  # a segment condition's clock: the time it is evaluated at (ms since the epoch)

# Functions the Rust CEL runtime provides natively (the Python stdlib extras are not enabled).
_KNOWN_FUNCTIONS = frozenset(
    {
        "size",
        "contains",
        "startsWith",
        "endsWith",
        "matches",
        "int",
        "uint",
        "double",
        "string",
        "bytes",
        "timestamp",
        "duration",
        "dyn",
        "type",
        "getFullYear",
        "getMonth",
        "getDayOfYear",
        "getDayOfMonth",
        "getDate",
        "getDayOfWeek",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
        "hasValue",
        "of",
        "value",
        "orValue",
        "none",
    }
)
_STRING_LITERAL = re.compile(
    r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\''
)
_REFERENCE = re.compile(r"\b(event|profile)\b((?:\s*\.\s*[A-Za-z_]\w*)*)(\s*[(\[])?")
_BINDER = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_]\w*)\s*,")


class ConditionError(ValueError):
    """An expression that does not compile or reads something that does not exist."""


class EvalError(RuntimeError):
    """An expression failed on one context (missing key, wrong type): the rule counts as not matching.

    The message names the expression and the kind of failure only: the runtime's own message
    can quote the client's values (PII), so it is kept in ``detail`` and never logged.
    """

    def __init__(self, source: str, exc: BaseException) -> None:
        self.detail = str(exc)
        super().__init__(f"{source!r}: {type(exc).__name__}")


Refs = dict[str, frozenset[str] | None]  # member -> sub-keys read (None: the whole member)


@dataclass(frozen=True)
class Needs:
    """The members of ``event`` and ``profile`` an expression reads; ``None`` means all of it."""

    event: Refs | None = field(default_factory=dict)
    profile: Refs | None = field(default_factory=dict)

    def union(self, other: Needs) -> Needs:
        return Needs(_union(self.event, other.event), _union(self.profile, other.profile))

    @property
    def reads_profile(self) -> bool:
        return self.profile is None or bool(self.profile)

    @staticmethod
    def of(items: Iterable[Needs]) -> Needs:
        out = Needs()
        for item in items:
            out = out.union(item)
        return out


def _union(a: Refs | None, b: Refs | None) -> Refs | None:
    if a is None or b is None:
        return None
    out = dict(a)
    for key, subs in b.items():
        if key in out:
            mine = out[key]
            out[key] = None if mine is None or subs is None else mine | subs
        else:
            out[key] = subs
    return out


def analyse(source: str) -> Needs:
    """Which members of ``event``/``profile`` ``source`` reads (string literals ignored)."""
    text = _STRING_LITERAL.sub('""', source)
    refs: dict[str, Refs | None] = {"event": {}, "profile": {}}
    for match in _REFERENCE.finditer(text):
        var = match.group(1)
        parts = [p.strip() for p in match.group(2).split(".") if p.strip()]
        follower = (match.group(3) or "").strip()
        if follower == "(" and parts:
            parts.pop()  # the last name is a method call: event.path.startsWith(...)
        current = refs[var]
        if current is None:
            continue
        if not parts:
            refs[var] = None
            continue
        member = parts[0]
        objects = EVENT_OBJECTS if var == "event" else PROFILE_OBJECTS
        if member in objects and len(parts) >= 2:
            sub: frozenset[str] | None = frozenset({parts[1]})
        elif member in objects:
            sub = None  # the whole object (indexing, `in`, or passed along)
        else:
            sub = frozenset()
        existing = current.get(member, frozenset())
        current[member] = None if existing is None or sub is None else existing | sub
    return Needs(refs["event"], refs["profile"])


# Event members that are plain values (or derived only from them): a condition reading only
# these can be memoized on their values, since CEL evaluation is pure.
MEMO_MEMBERS = frozenset(
    {"type", "event", "name", "path", "segments", "url", "referrer", "title", "search", "source"}
)
MEMO_LIMIT = 4096
FAILED = object()  # memoized "this evaluation raised"


@dataclass(frozen=True)
class Condition:
    """A compiled CEL expression plus what it reads.

    ``memo_keys`` lists the event members a memoizable condition reads (see MEMO_MEMBERS);
    the engine caches its results by their values in ``memo`` (bounded). ``reads_now``: it reads
    the ``now`` variable (segments only: the evaluation time, ms since the epoch).
    """

    source: str
    program: Any
    needs: Needs
    memo_keys: tuple[str, ...] | None = None
    reads_now: bool = False
    memo: dict[tuple[Any, ...], Any] = field(default_factory=dict, compare=False, repr=False)

    def __call__(self, context: Any) -> Any:
        """Evaluate on a ``cel.Context`` (or dict); failures raise :class:`EvalError`."""
        try:
            return self.program.execute(context)
        except MemoryError:
            raise
        except Exception as exc:
            raise EvalError(self.source, exc) from None
        except BaseException as exc:
            if type(exc).__name__ != "PanicException":  # pyo3: a Rust panic, not an interrupt
                raise
            raise EvalError(self.source, exc) from None

    def remember(self, key: tuple[Any, ...], value: Any) -> None:
        if len(self.memo) >= MEMO_LIMIT:
            self.memo.clear()
        self.memo[key] = value


def compile_condition(
    source: object,
    *,
    allow_profile: bool = True,
    aggregates: frozenset[str] | None = None,
    allow_now: bool = False,
) -> Condition:
    """Compile and check ``source``: syntax, variables, members and functions.

    ``aggregates`` lists the names ``profile.agg.<name>`` may use (None: any); ``allow_now``: it
    may read ``now`` (a segment's condition: the time it is evaluated at, in ms, like
    ``profile.last_seen``). Raises :class:`ConditionError` with a readable reason.
    """
    if not isinstance(source, str) or not source.strip():
        raise ConditionError(f"a CEL expression must be a non-empty string, got {source!r}")
    try:
        program = cel.compile(source)
    except ValueError as exc:
        raise ConditionError(f"CEL syntax error: {exc}") from None
    allowed = {"event", "profile"} if allow_profile else {"event"}
    if allow_now:
        allowed.add(NOW)
    binders = set(_BINDER.findall(_STRING_LITERAL.sub('""', source)))
    unknown = sorted(set(program.variables()) - allowed - binders)
    if unknown:
        hint = "" if allow_profile else " (this expression sees only `event`)"
        raise ConditionError(f"unknown variable(s) {', '.join(unknown)}{hint}")
    functions = [f for f in program.functions() if f[0].isalpha() and f not in _KNOWN_FUNCTIONS]
    if functions:
        raise ConditionError(f"unknown function(s) {', '.join(sorted(functions))}")
    needs = analyse(source)
    _check_members(needs, aggregates)
    memo_keys = None
    if needs.profile == {} and needs.event is not None and needs.event and set(needs.event) <= MEMO_MEMBERS:
        memo_keys = tuple(sorted(needs.event))
    return Condition(source, program, needs, memo_keys, reads_now=NOW in program.variables())


def _check_members(needs: Needs, aggregates: frozenset[str] | None) -> None:
    if needs.event:
        bad = sorted(set(needs.event) - EVENT_FIELDS)
        if bad:
            raise ConditionError(
                f"unknown event field(s) {', '.join(bad)}; known: {', '.join(sorted(EVENT_FIELDS))}"
            )
    if needs.profile:
        bad = sorted(set(needs.profile) - PROFILE_FIELDS)
        if bad:
            raise ConditionError(
                f"unknown profile field(s) {', '.join(bad)}; known: {', '.join(sorted(PROFILE_FIELDS))}"
            )
        used = needs.profile.get("agg")
        if aggregates is not None and used:
            missing = sorted(used - aggregates)
            if missing:
                raise ConditionError(f"unknown aggregate(s) {', '.join(missing)}")


def new_context(event: dict[str, Any]) -> Any:
    """A reusable CEL context holding ``event`` (``profile`` is added when a rule needs it)."""
    return cel.Context({"event": event})
