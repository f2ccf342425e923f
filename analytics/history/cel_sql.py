"""CEL over ``event`` translated to DuckDB SQL, with the runtime's meaning, or ``None``.

What translates (the shipped rules use only the first five lines; the rest is the same work):

* ``event.<field>`` (text members, ``timestamp``, ``path``/``url``/``referrer``/``title``/``search``,
  ``segments``) and ``event.properties|traits|context`` as JSON, to any depth, with ``[n]``/``["k"]``;
* ``has(...)``, ``startsWith``/``endsWith``/``contains``/``matches`` (a literal pattern: CEL and
  DuckDB both use RE2 syntax, ``matches`` finds the pattern anywhere), ``size()``;
* ``== != < <= > >=`` (mixed int/double compares; different types are unequal), ``in`` a list
  literal or ``event.segments``, ``&& || !``, ``c ? a : b``, ``"text" + "text"``;
* ``double()``, ``int()``, ``string()``, ``dyn()``; literals (text, int, double, bool, null).

Not translated (the condition is evaluated by the CEL runtime over the rows instead):
``profile``, ``event.identifiers``, ``event.session``, arithmetic other than joining text,
maps, comprehension macros (``all``/``exists``/``map``/``filter``), ``timestamp``/``duration``,
unsigned and bytes literals, ``in`` over JSON values.

The model. SQL ``NULL`` is a CEL *error*, so SQL's three-valued logic is CEL's: ``false && err``
is false, ``true || err`` true, ``!err`` an error, and a filter keeps rows whose value ``IS TRUE``
exactly as the engine keeps conditions that are exactly ``true``. A CEL ``null`` is kept apart:
in a JSON value it is JSON ``null``; for the text members an event may lack (``event.name``...)
the value is marked ``nullable`` and ``==``, ``!=``, ``in`` treat its ``NULL`` as CEL ``null``.

The runtime's own choices are kept where SQL differs: ``size("é")`` counts UTF-8 bytes (the
runtime does), ``string(1.0)`` is ``"1"`` (Rust formatting), ``string(true)`` is an error,
``double(" 1")`` is an error (DuckDB's cast would trim). Known difference, by design: a JSON
object with a duplicate key (DuckDB reads the first, Python the last). Call :func:`install`
once per connection: ``string()`` of a double uses its macros.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from analytics.history import cel_parse as p

BOOL, INT, DOUBLE, STRING, LIST, JSON, NULL = "bool", "int", "double", "string", "list", "json", "null"
_NUMBERS = (INT, DOUBLE)
_JSON_NUMBERS = "('BIGINT', 'UBIGINT', 'DOUBLE')"
# what Rust's f64::from_str reads: no spaces, no underscores; inf, infinity, nan in any case
_FLOAT_TEXT = (r"[+-]?(([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?"
               r"|[iI][nN][fF]([iI][nN][iI][tT][yY])?|[nN][aA][nN])")
_INT_TEXT = r"[+-]?[0-9]+"
_INT64_MIN = -9223372036854775808


class Untranslatable(Exception):
    """Raised inside the translator; :func:`translate` answers ``None``."""


@dataclass(frozen=True)
class Sql:
    """A translated expression: SQL text, its CEL type, and whether NULL may be CEL ``null``."""

    text: str
    type: str
    nullable: bool = False


@dataclass(frozen=True)
class Column:
    sql: str
    type: str
    nullable: bool = False


# The ``event`` members the base table provides (analytics.history.base), by CEL name.
EVENT_COLUMNS: dict[str, Column] = {
    "type": Column("e_type", STRING),
    "event": Column("e_event", STRING, True),
    "name": Column("e_name", STRING, True),
    "message_id": Column("message_id", STRING),
    "anonymous_id": Column("anonymous_id", STRING, True),
    "user_id": Column("user_id", STRING, True),
    "group_id": Column("group_id", STRING, True),
    "source": Column("source", STRING),
    "timestamp": Column("e_timestamp", INT),
    "path": Column("e_path", STRING),
    "url": Column("e_url", STRING),
    "referrer": Column("e_referrer", STRING),
    "title": Column("e_title", STRING),
    "search": Column("e_search", STRING),
    "segments": Column("list_filter(string_split(e_path, '/'), lambda s: s <> '')", LIST),
    "properties": Column("e_properties", JSON),
    "traits": Column("e_traits", JSON),
    "context": Column("e_context", JSON),
}


JSON_MEMBERS = ("properties", "traits", "context")


class Fields:
    """The top-level keys of the event's JSON members that expressions read, each extracted up
    front into its own column of the base table (``e_<member>_<n>``, every key of a member in one
    parse): an expression then reads a small value instead of parsing the whole member each time
    it names it (``has(x) ? double(x) : 0.0`` named it a dozen times)."""

    def __init__(self) -> None:
        self.keys: dict[str, dict[str, str]] = {}  # member -> key -> column

    def column(self, member: str, key: str) -> str:
        found = self.keys.setdefault(member, {})
        if key not in found:
            found[key] = f"e_{member}_{len(found)}"
        return found[key]


def quote(text: str) -> str:
    """A SQL text literal."""
    return "'" + text.replace("'", "''") + "'"


def _json_path(key: str) -> str:
    if '"' in key or "\\" in key or "'" in key:
        raise Untranslatable("a JSON key with quotes")
    return quote(f'$."{key}"')


def _null_if_error(value: Sql) -> str:
    """A guard true when the value is an *error* (never for CEL null)."""
    return "FALSE" if value.nullable else f"{value.text} IS NULL"


class Translator:
    """Walks a parsed expression; every method returns :class:`Sql` or raises Untranslatable."""

    def __init__(self, columns: Mapping[str, Column], profile: Mapping[str, Column] | None = None,
                 fields: Fields | None = None) -> None:
        self.columns = columns
        self.profile = profile or {}  # "score", "agg.<name>"...: values a caller computed per row
        self.fields = fields  # top-level keys of the JSON members as columns (None: read the member)
        self.read: set[str] = set()  # event members the SQL reads

    def _field(self, n: p.Node, key: str) -> str | None:
        """The column holding ``key`` of ``n`` when ``n`` is a JSON member of the event (always an
        object: the base table makes anything else ``{}``) and fields are extracted up front."""
        if (self.fields is None or not isinstance(n, p.Select) or not isinstance(n.operand, p.Ident)
                or n.operand.name != "event" or n.field not in JSON_MEMBERS or n.field not in self.columns):
            return None
        _json_path(key)  # the keys translated either way
        return self.fields.column(n.field, key)

    # -- entry -----------------------------------------------------------------------------
    def node(self, n: p.Node) -> Sql:
        handler: Callable[[p.Node], Sql] | None = getattr(self, f"_{type(n).__name__.lower()}", None)
        if handler is None:
            raise Untranslatable(type(n).__name__)
        return handler(n)

    # -- leaves ----------------------------------------------------------------------------
    def _lit(self, n: p.Node) -> Sql:
        assert isinstance(n, p.Lit)
        v = n.value
        if v is None:
            return Sql("NULL", NULL, True)
        if isinstance(v, bool):
            return Sql("TRUE" if v else "FALSE", BOOL)
        if isinstance(v, int):
            if not _INT64_MIN <= v <= -_INT64_MIN - 1:
                raise Untranslatable("integer literal out of range")
            return Sql(f"CAST({v} AS BIGINT)", INT)
        if isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                raise Untranslatable("non-finite literal")
            return Sql(f"CAST('{v!r}' AS DOUBLE)", DOUBLE)
        return Sql(quote(v), STRING)

    def _ident(self, n: p.Node) -> Sql:
        raise Untranslatable("a whole variable")

    def _select(self, n: p.Node) -> Sql:
        assert isinstance(n, p.Select)
        name = _profile_member(n)
        if name is not None:
            if name not in self.profile:
                raise Untranslatable(f"profile.{name}")
            column = self.profile[name]
            return Sql(column.sql, column.type, column.nullable)
        if isinstance(n.operand, p.Ident):
            if n.operand.name != "event" or n.field not in self.columns:
                raise Untranslatable(f"{n.operand.name}.{n.field}")
            column = self.columns[n.field]
            self.read.add(n.field)
            return Sql(column.sql, column.type, column.nullable)
        extracted = self._field(n.operand, n.field)
        if extracted is not None:
            return Sql(extracted, JSON)
        base = self.node(n.operand)
        if base.type != JSON:
            raise Untranslatable("a field of a non-JSON value")
        return Sql(f"(CASE WHEN json_type({base.text}) = 'OBJECT' "
                   f"THEN json_extract({base.text}, {_json_path(n.field)}) END)", JSON)

    def _index(self, n: p.Node) -> Sql:
        assert isinstance(n, p.Index)
        if isinstance(n.index, p.Lit) and isinstance(n.index.value, str):
            extracted = self._field(n.operand, n.index.value)
            if extracted is not None:
                return Sql(extracted, JSON)
        base = self.node(n.operand)
        if base.type == LIST:
            i = self.node(n.index)
            if i.type != INT:
                raise Untranslatable("a list index that is not an int")
            return Sql(f"(CASE WHEN {i.text} >= 0 THEN {base.text}[{i.text} + 1] END)", STRING)
        if base.type == JSON and isinstance(n.index, p.Lit):
            key = n.index.value
            if isinstance(key, str):
                return Sql(f"(CASE WHEN json_type({base.text}) = 'OBJECT' "
                           f"THEN json_extract({base.text}, {_json_path(key)}) END)", JSON)
            if isinstance(key, int) and not isinstance(key, bool) and key >= 0:
                return Sql(f"(CASE WHEN json_type({base.text}) = 'ARRAY' "
                           f"THEN json_extract({base.text}, '$[{key}]') END)", JSON)
        raise Untranslatable("this index")

    def _listlit(self, n: p.Node) -> Sql:
        raise Untranslatable("a list value outside `in`")

    # -- operators -------------------------------------------------------------------------
    def _unary(self, n: p.Node) -> Sql:
        assert isinstance(n, p.Unary)
        x = self.node(n.operand)
        if n.op == "!":
            return Sql(f"(NOT {as_bool(x)})", BOOL)
        if x.type == DOUBLE:
            return Sql(f"(-{x.text})", DOUBLE)
        if x.type == INT:
            return Sql(f"(CASE WHEN {x.text} <> {_INT64_MIN} THEN -{x.text} END)", INT)
        raise Untranslatable("negation of this type")

    def _binary(self, n: p.Node) -> Sql:
        assert isinstance(n, p.Binary)
        op = n.op
        if op in ("&&", "||"):
            left, right = self.node(n.left), self.node(n.right)
            word = "AND" if op == "&&" else "OR"
            return Sql(f"({as_bool(left)} {word} {as_bool(right)})", BOOL)
        if op == "in":
            return self._in(n)
        left, right = self.node(n.left), self.node(n.right)
        if op == "==":
            return Sql(equal(left, right), BOOL)
        if op == "!=":
            return Sql(f"(NOT {equal(left, right)})", BOOL)
        if op in ("<", "<=", ">", ">="):
            return Sql(order(op, left, right), BOOL)
        if op == "+" and left.type == STRING and right.type == STRING:
            return Sql(f"({left.text} || {right.text})", STRING)
        raise Untranslatable(f"operator {op}")

    def _in(self, n: p.Binary) -> Sql:
        item = self.node(n.left)
        if isinstance(n.right, p.ListLit):
            if not n.right.items:
                raise Untranslatable("`in` an empty list")
            tests = [equal(item, self.node(x)) for x in n.right.items]
            return Sql("(" + " OR ".join(tests) + ")", BOOL)
        container = self.node(n.right)
        if container.type == LIST and item.type == STRING:
            found = f"list_contains({container.text}, {item.text})"
            if item.nullable:
                found = f"(CASE WHEN {item.text} IS NULL THEN FALSE ELSE {found} END)"
            return Sql(found, BOOL)
        raise Untranslatable("`in` over this value")

    def _cond(self, n: p.Node) -> Sql:
        assert isinstance(n, p.Cond)
        test = as_bool(self.node(n.test))
        a, b = unify(self.node(n.then), self.node(n.other))
        return Sql(f"(CASE WHEN {test} IS NULL THEN NULL WHEN {test} THEN {a.text} ELSE {b.text} END)",
                   a.type)

    # -- calls -----------------------------------------------------------------------------
    def _call(self, n: p.Node) -> Sql:
        assert isinstance(n, p.Call)
        if n.target is None and n.function == "has" and len(n.args) == 1:
            return self._has(n.args[0])
        if n.target is None and len(n.args) == 1:
            arg = self.node(n.args[0])
            conversions = {"double": to_double, "int": to_int, "string": to_string, "size": size,
                           "dyn": lambda x: x}
            if n.function in conversions:
                return conversions[n.function](arg)
        if n.target is not None:
            target = self.node(n.target)
            if n.function == "size" and not n.args:
                return size(target)
            if n.function in ("startsWith", "endsWith", "contains", "matches") and len(n.args) == 1:
                return self._text_method(n.function, target, n.args[0])
        raise Untranslatable(f"function {n.function}")

    def _has(self, arg: p.Node) -> Sql:
        if not isinstance(arg, p.Select):
            raise Untranslatable("has() of this")
        if isinstance(arg.operand, p.Ident) and arg.operand.name == "event":
            if arg.field not in self.columns:
                raise Untranslatable(f"event.{arg.field}")
            return Sql("TRUE", BOOL)  # the engine builds every member a rule reads, null or not
        extracted = self._field(arg.operand, arg.field)
        if extracted is not None:  # a key absent is NULL, a JSON null is 'null'
            return Sql(f"({extracted} IS NOT NULL)", BOOL)
        base = self.node(arg.operand)
        if base.type != JSON:
            raise Untranslatable("has() on a non-JSON value")
        return Sql(f"(CASE WHEN json_type({base.text}) = 'OBJECT' "
                   f"THEN json_exists({base.text}, {_json_path(arg.field)}) END)", BOOL)

    def _text_method(self, name: str, target: Sql, arg_node: p.Node) -> Sql:
        text = as_text(target)
        if name == "matches":
            if not isinstance(arg_node, p.Lit) or not isinstance(arg_node.value, str):
                raise Untranslatable("matches() with a pattern that is not a literal")
            return Sql(f"regexp_matches({text}, {quote(arg_node.value)})", BOOL)
        arg = as_text(self.node(arg_node))
        function = {"startsWith": "starts_with", "endsWith": "ends_with", "contains": "contains"}[name]
        return Sql(f"{function}({text}, {arg})", BOOL)


def _profile_member(n: p.Select) -> str | None:
    """``score`` for ``profile.score``, ``agg.x`` for ``profile.agg.x``; None for anything else."""
    if isinstance(n.operand, p.Ident) and n.operand.name == "profile":
        return n.field
    inner = n.operand
    if (isinstance(inner, p.Select) and isinstance(inner.operand, p.Ident)
            and inner.operand.name == "profile" and inner.field == "agg"):
        return f"agg.{n.field}"
    return None


# -- typed helpers (module level: the fallback and the aggregates use them too) ----------------

def as_bool(x: Sql) -> str:
    """SQL BOOLEAN: the value when it is a bool, else NULL (CEL: no such overload, an error)."""
    if x.type == BOOL:
        return x.text
    if x.type == JSON:
        return f"(CASE WHEN json_type({x.text}) = 'BOOLEAN' THEN CAST({x.text} AS BOOLEAN) END)"
    return "CAST(NULL AS BOOLEAN)"


def as_text(x: Sql) -> str:
    """SQL VARCHAR: the value when it is text, else NULL (an error)."""
    if x.type == STRING:
        return x.text
    if x.type == JSON:
        return f"(CASE WHEN json_type({x.text}) = 'VARCHAR' THEN json_extract_string({x.text}, '$') END)"
    return "CAST(NULL AS VARCHAR)"


def _json_number(j: str, target: str) -> str:
    return f"(CASE WHEN json_type({j}) IN {_JSON_NUMBERS} THEN CAST({j} AS {target}) END)"


def to_double(x: Sql) -> Sql:
    if x.type == DOUBLE:
        return x
    if x.type == INT:
        return Sql(f"CAST({x.text} AS DOUBLE)", DOUBLE)
    if x.type == STRING:
        return Sql(_parse_double(x.text), DOUBLE)
    if x.type == JSON:
        return Sql(f"(CASE json_type({x.text}) WHEN 'VARCHAR' THEN {_parse_double(as_text(x))} "
                   f"ELSE {_json_number(x.text, 'DOUBLE')} END)", DOUBLE)
    return Sql("CAST(NULL AS DOUBLE)", DOUBLE)


def _parse_double(text: str) -> str:
    return f"(CASE WHEN regexp_full_match({text}, {quote(_FLOAT_TEXT)}) THEN CAST({text} AS DOUBLE) END)"


def _double_to_int(text: str) -> str:
    return (f"(CASE WHEN {text} >= -9223372036854775808.0 AND {text} < 9223372036854775808.0 "
            f"THEN CAST(trunc({text}) AS BIGINT) END)")


def to_int(x: Sql) -> Sql:
    if x.type == INT:
        return x
    if x.type == DOUBLE:
        return Sql(_double_to_int(x.text), INT)
    if x.type == STRING:
        return Sql(f"(CASE WHEN regexp_full_match({x.text}, {quote(_INT_TEXT)}) "
                   f"THEN TRY_CAST({x.text} AS BIGINT) END)", INT)
    if x.type == JSON:
        j = x.text
        text = as_text(x)
        return Sql(f"(CASE json_type({j}) WHEN 'BIGINT' THEN CAST({j} AS BIGINT) "
                   f"WHEN 'UBIGINT' THEN TRY_CAST({j} AS BIGINT) "
                   f"WHEN 'DOUBLE' THEN {_double_to_int(f'CAST({j} AS DOUBLE)')} "
                   f"WHEN 'VARCHAR' THEN (CASE WHEN regexp_full_match({text}, {quote(_INT_TEXT)}) "
                   f"THEN TRY_CAST({text} AS BIGINT) END) END)", INT)
    return Sql("CAST(NULL AS BIGINT)", INT)


def _rust_double(text: str) -> str:
    """How the runtime prints a double (Rust): no exponent, integral values without ``.0``."""
    return f"h_rust_double({text})"


# DuckDB prints a double as Python's repr does (shortest round trip); these expand its exponent.
MACROS = (
    """CREATE OR REPLACE TEMP MACRO h_expand_exp(m) AS (
        CASE WHEN CAST(m.e AS INTEGER) >= 0 THEN
            CASE WHEN CAST(m.e AS INTEGER) >= strlen(m.f)
                 THEN m.s || m.d || m.f || repeat('0', CAST(m.e AS INTEGER) - strlen(m.f))
                 ELSE m.s || m.d || substr(m.f, 1, CAST(m.e AS INTEGER)) || '.'
                      || substr(m.f, CAST(m.e AS INTEGER) + 1) END
        ELSE m.s || '0.' || repeat('0', -CAST(m.e AS INTEGER) - 1) || m.d || m.f END)""",
    """CREATE OR REPLACE TEMP MACRO h_expand(t) AS (
        CASE WHEN NOT contains(t, 'e')
             THEN (CASE WHEN ends_with(t, '.0') THEN left(t, strlen(t) - 2) ELSE t END)
             ELSE h_expand_exp(regexp_extract(t, '^(-?)([0-9])(?:[.]([0-9]+))?e([+-][0-9]+)$',
                                              ['s', 'd', 'f', 'e'])) END)""",
    """CREATE OR REPLACE TEMP MACRO h_rust_double(x) AS (
        CASE WHEN isnan(x) THEN 'NaN' WHEN isinf(x) THEN (CASE WHEN x > 0 THEN 'inf' ELSE '-inf' END)
             WHEN x = 0 THEN (CASE WHEN signbit(x) THEN '-0' ELSE '0' END)
             ELSE h_expand(CAST(x AS VARCHAR)) END)""",
)


def install(con: Any) -> None:
    """Create the macros translated SQL calls (once per connection)."""
    for sql in MACROS:
        con.execute(sql)


def to_string(x: Sql) -> Sql:
    if x.type == STRING:
        return replace(x, nullable=False)
    if x.type == INT:
        return Sql(f"CAST({x.text} AS VARCHAR)", STRING)
    if x.type == DOUBLE:
        return Sql(_rust_double(x.text), STRING)
    if x.type == JSON:
        j = x.text
        return Sql(f"(CASE json_type({j}) WHEN 'VARCHAR' THEN json_extract_string({j}, '$') "
                   f"WHEN 'BIGINT' THEN CAST({j} AS VARCHAR) WHEN 'UBIGINT' THEN CAST({j} AS VARCHAR) "
                   f"WHEN 'DOUBLE' THEN {_rust_double(f'CAST({j} AS DOUBLE)')} END)", STRING)
    return Sql("CAST(NULL AS VARCHAR)", STRING)


def size(x: Sql) -> Sql:
    if x.type == STRING:
        return Sql(f"CAST(strlen({x.text}) AS BIGINT)", INT)  # the runtime counts UTF-8 bytes
    if x.type == LIST:
        return Sql(f"CAST(len({x.text}) AS BIGINT)", INT)
    if x.type == JSON:
        j = x.text
        return Sql(f"(CASE json_type({j}) "
                   f"WHEN 'VARCHAR' THEN CAST(strlen(json_extract_string({j}, '$')) AS BIGINT) "
                   f"WHEN 'ARRAY' THEN CAST(json_array_length({j}) AS BIGINT) "
                   f"WHEN 'OBJECT' THEN CAST(len(json_keys({j})) AS BIGINT) END)", INT)
    return Sql("CAST(NULL AS BIGINT)", INT)


def to_json(x: Sql) -> Sql:
    """Any value as DuckDB JSON (CEL null as JSON null, errors stay NULL)."""
    if x.type == JSON:
        return x
    if x.type == NULL:
        return Sql("CAST('null' AS JSON)", JSON)
    value = f"to_json({x.text})"
    if x.nullable:
        value = f"(CASE WHEN {x.text} IS NULL THEN CAST('null' AS JSON) ELSE {value} END)"
    return Sql(value, JSON)


def json_text(x: Sql) -> str:
    """VARCHAR JSON text of a JSON value as the runtime types it: an integer too long for 64 bits
    is a double to CEL (``1e+20``), while DuckDB keeps the digits."""
    return (f"(CASE json_type({x.text}) WHEN 'DOUBLE' THEN CAST(CAST({x.text} AS DOUBLE) AS VARCHAR) "
            f"ELSE CAST({x.text} AS VARCHAR) END)")


def unify(a: Sql, b: Sql) -> tuple[Sql, Sql]:
    """Branches of a ternary in one type (JSON when they differ or one may be null)."""
    if a.type == b.type and not a.nullable and not b.nullable and a.type != NULL:
        return a, b
    return to_json(a), to_json(b)


def _family(t: str) -> str:
    return "number" if t in _NUMBERS else t


def _json_matches(j: str, other: Sql) -> tuple[str, str]:
    """(JSON types comparable with ``other``, the JSON value read as ``other``'s SQL type)."""
    family = _family(other.type)
    if family == STRING:
        return "('VARCHAR')", f"json_extract_string({j}, '$')"
    if family == "number":
        return _JSON_NUMBERS, f"CAST({j} AS DOUBLE)" if other.type == DOUBLE else (
            f"(CASE json_type({j}) WHEN 'DOUBLE' THEN CAST({j} AS DOUBLE) ELSE CAST({j} AS HUGEINT) END)")
    if family == BOOL:
        return "('BOOLEAN')", f"CAST({j} AS BOOLEAN)"
    raise Untranslatable(f"comparing JSON with {other.type}")


def equal(a: Sql, b: Sql) -> str:
    """SQL for CEL ``a == b`` (NULL when either side is an error)."""
    if a.type == NULL or b.type == NULL:
        x = b if a.type == NULL else a
        if x.type == NULL:
            return "TRUE"
        if x.nullable:
            return f"({x.text} IS NULL)"
        if x.type == JSON:
            return f"(CASE WHEN {x.text} IS NULL THEN NULL ELSE json_type({x.text}) = 'NULL' END)"
        return f"(CASE WHEN {x.text} IS NULL THEN NULL ELSE FALSE END)"
    if a.type == JSON and b.type == JSON:
        raise Untranslatable("comparing two JSON values")
    if b.type == JSON:
        a, b = b, a
    if a.type == JSON:
        if b.type == LIST:
            raise Untranslatable("comparing JSON with a list")
        types, read = _json_matches(a.text, b)
        if b.nullable:
            return (f"(CASE WHEN {a.text} IS NULL THEN NULL "
                    f"WHEN {b.text} IS NULL THEN json_type({a.text}) = 'NULL' "
                    f"WHEN json_type({a.text}) IN {types} THEN {read} = {b.text} ELSE FALSE END)")
        return (f"(CASE WHEN {a.text} IS NULL OR {b.text} IS NULL THEN NULL "
                f"WHEN json_type({a.text}) IN {types} THEN {read} = {b.text} ELSE FALSE END)")
    if LIST in (a.type, b.type):
        raise Untranslatable("comparing lists")
    errors = " OR ".join(g for g in (_null_if_error(a), _null_if_error(b)) if g != "FALSE") or "FALSE"
    if _family(a.type) != _family(b.type):
        return f"(CASE WHEN {errors} THEN NULL ELSE FALSE END)"  # null == 1 is false too
    if not a.nullable and not b.nullable:
        return f"({a.text} = {b.text})"
    return (f"(CASE WHEN {errors} THEN NULL WHEN {a.text} IS NULL AND {b.text} IS NULL THEN TRUE "
            f"WHEN {a.text} IS NULL OR {b.text} IS NULL THEN FALSE ELSE {a.text} = {b.text} END)")


def order(op: str, a: Sql, b: Sql) -> str:
    """SQL for CEL ``a < b`` and friends: numbers with numbers, text with text, else an error."""
    if JSON in (a.type, b.type):
        if a.type == JSON and b.type == JSON:
            raise Untranslatable("ordering two JSON values")
        j, other, flip = (a, b, False) if a.type == JSON else (b, a, True)
        if _family(other.type) not in (STRING, "number"):
            raise Untranslatable("ordering JSON with this type")
        types, read = _json_matches(j.text, other)
        left, right = (other.text, read) if flip else (read, other.text)
        return f"(CASE WHEN json_type({j.text}) IN {types} THEN {left} {op} {right} END)"
    if _family(a.type) == _family(b.type) and _family(a.type) in (STRING, "number"):
        if DOUBLE in (a.type, b.type):  # NaN orders with nothing in CEL
            return f"(CASE WHEN NOT isnan({a.text}) AND NOT isnan({b.text}) THEN {a.text} {op} {b.text} END)"
        return f"({a.text} {op} {b.text})"
    if BOOL == a.type == b.type:
        return f"({a.text} {op} {b.text})"
    return "CAST(NULL AS BOOLEAN)"


def translate(source: str, columns: Mapping[str, Column] = EVENT_COLUMNS,
              profile: Mapping[str, Column] | None = None,
              fields: Fields | None = None) -> tuple[Sql, frozenset[str]] | None:
    """The SQL of a CEL expression over ``event`` (and the ``profile`` members a caller computed
    per row, ``profile``) and the event members it reads; None when some construct is not
    translated (the caller evaluates the expression with the runtime). With ``fields``, a
    top-level key of a JSON member is read from its column (registered there), not counted as
    reading the member."""
    try:
        tree = p.parse(source)
        translator = Translator(columns, profile, fields)
        return translator.node(tree), frozenset(translator.read)
    except (p.ParseError, Untranslatable, RecursionError):
        return None


def condition_sql(source: str, columns: Mapping[str, Column] = EVENT_COLUMNS) -> str | None:
    """SQL true exactly where the condition is exactly ``true`` (a ``where:``), or None."""
    done = translate(source, columns)
    return None if done is None else f"({as_bool(done[0])} IS TRUE)"
