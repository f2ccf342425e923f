"""Which way time alone can move a segment's condition: whether a non-member needs a timer.

Under rules with a timed segment every profile used to keep a segment timer, member or not. Yet
most time-dependent reads only ever fall with time: a decaying score (all points >= 0), a tag
(it expires), a windowed count, distinct count or maximum (buckets only leave). A condition built
from those by ``>=``, ``&&``, ``in`` can only turn *false* by time alone, so a person outside the
segment cannot enter it without an event, and needs no timer (members are re-checked anyway).

:func:`direction` parses the condition (a small CEL parser: the ``cel`` runtime exposes no tree)
and gives each sub-expression a direction as time passes: :data:`CONST`, :data:`UP` (only ever
grows, or for a condition: can only turn true), :data:`DOWN` (only shrinks, turns false) or
:data:`ANY`. ``now`` and ``now - profile.last_seen`` rise; ``!`` and ``-`` flip; ``&&``, ``||``,
``+`` and conversions keep; ``a > b`` is the direction of ``a - b``. Anything else (equality on
a moving value, the tier, a windowed sum, a ternary, a function of a moving value, text that does
not parse) is :data:`ANY`: timed, as before (safe).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

CONST, UP, DOWN, ANY = "const", "up", "down", "any"
Node = tuple[Any, ...]
Leaf = Callable[[tuple[str, ...]], str]  # profile.<path> -> its direction

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<num>0[xX][0-9a-fA-F]+[uU]?|(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?[uU]?)
    | (?P<str>[rRbB]{0,2}(?:\"\"\"(?:\\.|[^\\])*?\"\"\"|'''(?:\\.|[^\\])*?'''
                         |"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'))
    | (?P<id>[A-Za-z_][A-Za-z_0-9]*)
    | (?P<op>\|\||&&|==|!=|<=|>=|[-+*/%!<>?:.,()\[\]{}])
    )""", re.VERBOSE)
_BINARY = [("||",), ("&&",), ("==", "!=", "<", "<=", ">", ">=", "in"), ("+", "-"), ("*", "/", "%")]
_KEEP = {"int", "uint", "double"}  # conversions that keep order


class _Parser:
    """Recursive descent over CEL's grammar; raises ValueError on anything it does not know."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            if text[pos:].strip() == "":
                break
            m = _TOKEN.match(text, pos)
            if m is None or m.end() == pos:
                raise ValueError(f"unexpected text at {pos}")
            kind = m.lastgroup or "op"
            self.tokens.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self, want: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.tokens) or (want is not None and self.tokens[self.i][1] != want):
            raise ValueError(f"expected {want!r}")
        self.i += 1
        return self.tokens[self.i - 1]

    def parse(self) -> Node:
        node = self.expr()
        if self.i != len(self.tokens):
            raise ValueError("trailing text")
        return node

    def expr(self) -> Node:
        cond = self.binary(0)
        if self.peek() == "?":
            self.take()
            yes = self.expr()
            self.take(":")
            return ("cond", cond, yes, self.expr())
        return cond

    def binary(self, level: int) -> Node:
        if level == len(_BINARY):
            return self.unary()
        node = self.binary(level + 1)
        while self.peek() in _BINARY[level] and self.tokens[self.i][0] in ("op", "id"):
            op = self.take()[1]
            node = ("bin", op, node, self.binary(level + 1))
        return node

    def unary(self) -> Node:
        if self.peek() == "!":
            self.take()
            return ("not", self.unary())
        if self.peek() == "-":
            self.take()
            return ("neg", self.unary())
        return self.member()

    def member(self) -> Node:
        node = self.primary()
        while self.peek() in (".", "["):
            if self.take()[1] == ".":
                name = self.take()
                if name[0] != "id":
                    raise ValueError("expected a name")
                if self.peek() == "(":
                    node = ("call", name[1], node, self.args(")"))
                else:
                    node = ("sel", node, name[1])
            else:
                node = ("idx", node, self.expr())
                self.take("]")
        return node

    def args(self, close: str) -> list[Node]:
        self.take()
        out: list[Node] = []
        while self.peek() != close:
            out.append(self.expr())
            if self.peek() == ":":  # a map literal's value
                self.take()
                out.append(self.expr())
            if self.peek() != close:
                self.take(",")
        self.take(close)
        return out

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "num":
            return ("lit", float(text.rstrip("uU")) if not text.lower().startswith("0x")
                    else float(int(text.rstrip("uU"), 16)))
        if kind == "str":
            return ("lit", text)
        if kind == "id":
            if text in ("true", "false", "null"):
                return ("lit", text)
            if self.peek() == "(":
                return ("call", text, None, self.args(")"))
            return ("id", text)
        if text == "(":
            node = self.expr()
            self.take(")")
            return node
        if text in ("[", "{"):
            self.i -= 1
            return ("list", self.args("]" if text == "[" else "}"))
        raise ValueError(f"unexpected {text!r}")


def parse(text: str) -> Node | None:
    """The condition's tree, or None when this parser does not understand it."""
    try:
        return _Parser(text).parse()
    except (ValueError, RecursionError):
        return None


def flip(d: str) -> str:
    return {UP: DOWN, DOWN: UP}.get(d, d)


def join(a: str, b: str) -> str:
    """Direction of a sum (or ``&&``, ``||``) of two things moving ``a`` and ``b``."""
    if a == CONST:
        return b
    if b == CONST or a == b:
        return a
    return ANY


def _path(node: Node) -> tuple[str, ...] | None:
    """``profile.a.b`` as ("a", "b"); None for anything else."""
    parts: list[str] = []
    while node[0] in ("sel", "idx"):
        if node[0] == "sel":
            parts.append(node[2])
        elif node[2][0] == "lit" and isinstance(node[2][1], str):
            parts.append(node[2][1].strip("'\""))
        else:
            return None
        node = node[1]
    return tuple(reversed(parts)) if node == ("id", "profile") else None


def direction(node: Node, leaf: Leaf) -> str:
    """How ``node`` moves with time alone (see the module doc); ``leaf`` gives ``profile.…``'s."""
    op = node[0]
    if op == "lit":
        return CONST
    if op == "id":  # `now` rises; `profile` whole is anything; others are comprehension binders
        return UP if node[1] == "now" else ANY if node[1] == "profile" else CONST
    if op in ("sel", "idx"):
        path = _path(node)
        if path is not None:
            return leaf(path)
        return CONST if all(direction(n, leaf) == CONST for n in node[1:] if isinstance(n, tuple)) else ANY
    if op == "not" or op == "neg":
        return flip(direction(node[1], leaf))
    if op == "cond" or op == "list":
        parts = node[1:] if op == "cond" else node[1]
        return CONST if all(direction(n, leaf) == CONST for n in parts) else ANY
    if op == "call":
        return _call(node, leaf)
    assert op == "bin"
    name, a, b = node[1], direction(node[2], leaf), direction(node[3], leaf)
    if name in ("==", "!="):  # the leaf may know a level a falling value can leave or reach
        for side, other in ((node[2], node[3]), (node[3], node[2])):
            path = _path(side)
            if path is not None and other[0] == "lit" and isinstance(other[1], str) and other[1][:1] in "'\"":
                equal = leaf((*path, "==", other[1][1:-1]))
                if equal != ANY:
                    return equal if name == "==" else flip(equal)
    if name in ("&&", "||", "+"):
        return join(a, b)
    if name in ("-", ">", ">="):
        return join(a, flip(b))
    if name in ("<", "<="):
        return join(flip(a), b)
    if name == "in":  # an element in a collection: as the collection grows or shrinks
        return b if a == CONST else ANY
    if name in ("*", "/"):
        sign = _sign(node[3])
        if sign is not None and (name == "*" or sign != 0):
            return CONST if sign == 0 else a if sign > 0 else flip(a)
        if name == "*" and (sign := _sign(node[2])) is not None:
            return CONST if sign == 0 else b if sign > 0 else flip(b)
    return CONST if a == b == CONST else ANY


def _sign(node: Node) -> int | None:
    """The sign of a numeric literal (``-3``, ``86400000``), None for anything else."""
    if node[0] == "neg":
        inner = _sign(node[1])
        return None if inner is None else -inner
    if node[0] == "lit" and isinstance(node[1], float):
        return (node[1] > 0) - (node[1] < 0)
    if node[0] == "bin" and node[1] == "*":
        a, b = _sign(node[2]), _sign(node[3])
        return None if a is None or b is None else a * b
    return None


def _call(node: Node, leaf: Leaf) -> str:
    _, name, target, args = node
    parts = ([target] if target is not None else []) + list(args)
    dirs = [direction(n, leaf) for n in parts]
    if all(d == CONST for d in dirs):
        return CONST
    if len(parts) == 1 and (name in _KEEP or name == "size"):  # size of a shrinking tag set
        return dirs[0]
    return ANY
