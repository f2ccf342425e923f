"""A parser for the CEL the rules file uses, to an AST the SQL translator walks.

The CEL runtime (``cel``, Rust) compiles and runs expressions but shows no syntax tree, so
the translator needs its own reading of the source. This is CEL's grammar (operators,
precedence, literals, member access, calls, lists and maps); the *meaning* stays the
runtime's: anything parsed here and not understood by :mod:`analytics.history.cel_sql` is
evaluated by the runtime itself (:mod:`analytics.history.fallback`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


class ParseError(ValueError):
    """Source this parser does not read (the runtime may still: the rule is then evaluated)."""


@dataclass(frozen=True)
class Lit:
    value: Any  # str, int, float, bool or None


@dataclass(frozen=True)
class Ident:
    name: str


@dataclass(frozen=True)
class Select:
    operand: Node
    field: str


@dataclass(frozen=True)
class Index:
    operand: Node
    index: Node


@dataclass(frozen=True)
class Call:
    target: Node | None  # x.f(args) has a target; f(args) does not
    function: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Unary:
    op: str  # "!" or "-"
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str  # || && == != < <= > >= in + - * / %
    left: Node
    right: Node


@dataclass(frozen=True)
class Cond:
    test: Node
    then: Node
    other: Node


@dataclass(frozen=True)
class ListLit:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class MapLit:
    entries: tuple[tuple[Node, Node], ...]


Node = Lit | Ident | Select | Index | Call | Unary | Binary | Cond | ListLit | MapLit

_TOKEN = re.compile(
    r"""
    (?P<space>\s+|//[^\n]*)
  | (?P<string>[rR]?(?:\"\"\"[\s\S]*?\"\"\"|'''[\s\S]*?'''|"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'))
  | (?P<bytes>[bB][rR]?["'])
  | (?P<number>0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?[uU]?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op>\|\||&&|==|!=|<=|>=|[<>!?:.,()\[\]{}+\-*/%])
    """,
    re.VERBOSE,
)
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", "'": "'", '"': '"', "`": "`", "?": "?"}
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|x[0-9a-fA-F]{2}|[0-3][0-7]{2}|.)", re.DOTALL)
_RELATIONS = ("==", "!=", "<", "<=", ">", ">=", "in")


def _unescape(body: str) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code[0] in "uUx":
            return chr(int(code[1:], 16))
        if code[0] in "0123" and len(code) == 3:
            return chr(int(code, 8))
        if code in _ESCAPES:
            return _ESCAPES[code]
        raise ParseError(f"unknown escape \\{code}")

    return _ESCAPE.sub(one, body)


def _string(text: str) -> str:
    raw = text[0] in "rR"
    if raw:
        text = text[1:]
    quote = 3 if text[:3] in ('"""', "'''") else 1
    body = text[quote:-quote]
    return body if raw else _unescape(body)


def _number(text: str) -> int | float:
    if text[-1] in "uU":
        raise ParseError("unsigned literals are not translated")
    if text[:2] in ("0x", "0X"):
        return int(text, 16)
    if any(c in text for c in ".eE"):
        return float(text)
    return int(text)


def tokens(source: str) -> list[tuple[str, Any]]:
    """``(kind, value)`` pairs; kinds: string, number, name, op, end."""
    out: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            raise ParseError(f"unexpected character at {pos}")
        pos = match.end()
        kind = match.lastgroup or ""
        text = match.group(kind)
        if kind == "space":
            continue
        if kind == "bytes":
            raise ParseError("bytes literals are not translated")
        if kind == "string":
            out.append(("string", _string(text)))
        elif kind == "number":
            out.append(("number", _number(text)))
        else:
            out.append((kind, text))
    out.append(("end", None))
    return out


class _Parser:
    def __init__(self, source: str) -> None:
        self.toks = tokens(source)
        self.pos = 0

    def peek(self, *ops: str) -> bool:
        kind, value = self.toks[self.pos]
        return kind in ("op", "name") and value in ops

    def take(self, op: str) -> None:
        if not self.peek(op):
            raise ParseError(f"expected {op!r}")
        self.pos += 1

    def expr(self) -> Node:
        test = self.disjunction()
        if self.peek("?"):
            self.pos += 1
            then = self.disjunction()
            self.take(":")
            return Cond(test, then, self.expr())
        return test

    def disjunction(self) -> Node:
        node = self.conjunction()
        while self.peek("||"):
            self.pos += 1
            node = Binary("||", node, self.conjunction())
        return node

    def conjunction(self) -> Node:
        node = self.relation()
        while self.peek("&&"):
            self.pos += 1
            node = Binary("&&", node, self.relation())
        return node

    def relation(self) -> Node:
        node = self.addition()
        while self.peek(*_RELATIONS):
            op = self.toks[self.pos][1]
            self.pos += 1
            node = Binary(op, node, self.addition())
        return node

    def addition(self) -> Node:
        node = self.multiplication()
        while self.peek("+", "-"):
            op = self.toks[self.pos][1]
            self.pos += 1
            node = Binary(op, node, self.multiplication())
        return node

    def multiplication(self) -> Node:
        node = self.unary()
        while self.peek("*", "/", "%"):
            op = self.toks[self.pos][1]
            self.pos += 1
            node = Binary(op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.peek("!", "-"):
            op = self.toks[self.pos][1]
            self.pos += 1
            operand = self.unary()
            if op == "-" and isinstance(operand, Lit) and type(operand.value) in (int, float):
                return Lit(-operand.value)
            return Unary(op, operand)
        return self.member()

    def member(self) -> Node:
        node = self.primary()
        while True:
            if self.peek("."):
                self.pos += 1
                kind, name = self.toks[self.pos]
                if kind != "name":
                    raise ParseError("expected a field name after '.'")
                self.pos += 1
                node = Call(node, name, self.arguments()) if self.peek("(") else Select(node, name)
            elif self.peek("["):
                self.pos += 1
                index = self.expr()
                self.take("]")
                node = Index(node, index)
            else:
                return node

    def arguments(self) -> tuple[Node, ...]:
        self.take("(")
        args: list[Node] = []
        if not self.peek(")"):
            args.append(self.expr())
            while self.peek(","):
                self.pos += 1
                args.append(self.expr())
        self.take(")")
        return tuple(args)

    def primary(self) -> Node:
        kind, value = self.toks[self.pos]
        if kind in ("string", "number"):
            self.pos += 1
            return Lit(value)
        if kind == "name":
            self.pos += 1
            if value in ("true", "false"):
                return Lit(value == "true")
            if value == "null":
                return Lit(None)
            if self.peek("("):
                return Call(None, value, self.arguments())
            return Ident(value)
        if self.peek("("):
            self.pos += 1
            node = self.expr()
            self.take(")")
            return node
        if self.peek("["):
            self.pos += 1
            items: list[Node] = []
            while not self.peek("]"):
                items.append(self.expr())
                if not self.peek(","):
                    break
                self.pos += 1
            self.take("]")
            return ListLit(tuple(items))
        if self.peek("{"):
            self.pos += 1
            entries: list[tuple[Node, Node]] = []
            while not self.peek("}"):
                key = self.expr()
                self.take(":")
                entries.append((key, self.expr()))
                if not self.peek(","):
                    break
                self.pos += 1
            self.take("}")
            return MapLit(tuple(entries))
        raise ParseError(f"unexpected {value!r}")


def parse(source: str) -> Node:
    """The AST of a CEL expression; :class:`ParseError` for what this parser does not read."""
    parser = _Parser(source)
    node = parser.expr()
    if parser.toks[parser.pos][0] != "end":
        raise ParseError("unexpected text after the expression")
    return node
