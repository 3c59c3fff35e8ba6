"""Parse and type-check the CEL subset segments accept, keeping each node's position.

The subset: comparisons (`< <= > >= == !=`), `&&`, `||`, `!`, `in` (a list field, a map's
keys or a list literal), `has(map.key)`, field access, string/number/bool literals,
`timestamp("...")` and `size(...)`. Anything else is refused with its position, so every
accepted expression has an exact SQL translation (`rules/segment_sql.py`). Pure.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime

from switchboard.server.rules.segment_fields import (
    CONSENT_KEYS,
    FIELDS,
    Field,
    Kind,
    known_fields,
)


class ExpressionError(ValueError):
    """An expression outside the subset, with a message naming the position."""


@dataclass(frozen=True, slots=True)
class Lit:
    value: int | float | str | bool
    kind: Kind


@dataclass(frozen=True, slots=True)
class Ref:
    """A top-level field, or one key of a map field (`key` set)."""

    field: Field
    key: str = ""


@dataclass(frozen=True, slots=True)
class Has:
    field: Field
    key: str


@dataclass(frozen=True, slots=True)
class Size:
    arg: Ref


@dataclass(frozen=True, slots=True)
class Not:
    arg: Node


@dataclass(frozen=True, slots=True)
class Bool:
    op: str  # "&&" or "||"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Cmp:
    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class In:
    item: Node
    container: Ref | tuple[Lit, ...]


Node = Lit | Ref | Has | Size | Not | Bool | Cmp | In

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)|\d+)
   |(?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
   |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
   |(?P<op>&&|\|\||==|!=|<=|>=|[<>!().,\[\]-])
    )""",
    re.VERBOSE,
)
_RELATIONS = ("<", "<=", ">", ">=", "==", "!=")
_MAX_LENGTH = 4096


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # num, str, name, op, end
    text: str
    at: int


def _where(source: str, at: int) -> str:
    line = source.count("\n", 0, at) + 1
    col = at - (source.rfind("\n", 0, at) + 1) + 1
    return f"{line}:{col}"


def _tokens(source: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(source):
        if source[pos:].strip() == "":
            break
        m = _TOKEN.match(source, pos)
        if m is None or m.lastgroup is None:
            at = len(source) - len(source[pos:].lstrip())
            raise ExpressionError(f"unexpected character {source[at]!r} at {_where(source, at)}")
        out.append(_Tok(m.lastgroup, m.group(m.lastgroup), m.start(m.lastgroup)))
        pos = m.end()
    out.append(_Tok("end", "", len(source)))
    return out


class _Parser:
    def __init__(self, source: str) -> None:
        self.src = source
        self.toks = _tokens(source)
        self.i = 0

    # -- token helpers ----------------------------------------------------------------
    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def accept(self, text: str) -> bool:
        if self.peek().kind in ("op", "name") and self.peek().text == text:
            self.i += 1
            return True
        return False

    def fail(self, message: str, tok: _Tok | None = None, hint: str = "") -> ExpressionError:
        at = (tok or self.peek()).at
        return ExpressionError(f"{message} at {_where(self.src, at)}{hint}")

    def expect(self, text: str) -> None:
        if not self.accept(text):
            got = self.peek().text or "end of expression"
            raise self.fail(f"expected {text!r}, found {got!r}")

    # -- grammar ----------------------------------------------------------------------
    def parse(self) -> Node:
        node = self.or_()
        if self.peek().kind != "end":
            raise self.fail(f"unexpected {self.peek().text!r}")
        self.need(node, Kind.BOOL, self.toks[0], "the expression")
        return node

    def or_(self) -> Node:
        left = self.and_()
        while self.peek().text == "||" and self.peek().kind == "op":
            tok = self.take()
            right = self.and_()
            self.need(left, Kind.BOOL, tok, "'||'")
            self.need(right, Kind.BOOL, tok, "'||'")
            left = Bool("||", left, right)
        return left

    def and_(self) -> Node:
        left = self.relation()
        while self.peek().text == "&&" and self.peek().kind == "op":
            tok = self.take()
            right = self.relation()
            self.need(left, Kind.BOOL, tok, "'&&'")
            self.need(right, Kind.BOOL, tok, "'&&'")
            left = Bool("&&", left, right)
        return left

    def relation(self) -> Node:
        left = self.unary()
        tok = self.peek()
        if tok.kind == "op" and tok.text in _RELATIONS:
            self.take()
            right = self.unary()
            self.check_compare(tok, left, right)
            return Cmp(tok.text, left, right)
        if tok.kind == "name" and tok.text == "in":
            self.take()
            return self.membership(tok, left)
        return left

    def unary(self) -> Node:
        tok = self.peek()
        if tok.kind == "op" and tok.text == "!":
            self.take()
            arg = self.unary()
            self.need(arg, Kind.BOOL, tok, "'!'")
            return Not(arg)
        if tok.kind == "op" and tok.text == "-":
            self.take()
            num = self.peek()
            if num.kind != "num":
                raise self.fail("'-' is only supported before a number literal", tok)
            lit = self.number(self.take())
            return Lit(-lit.value, lit.kind)  # type: ignore[operator]
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            return self.number(tok)
        if tok.kind == "str":
            return Lit(self.string(tok), Kind.STRING)
        if tok.kind == "op" and tok.text == "(":
            node = self.or_()
            self.expect(")")
            return node
        if tok.kind == "name":
            if tok.text in ("true", "false"):
                return Lit(tok.text == "true", Kind.BOOL)
            if self.peek().text == "(" and self.peek().kind == "op":
                return self.call(tok)
            return self.field(tok)
        raise self.fail(f"unexpected {tok.text or 'end of expression'!r}", tok)

    def number(self, tok: _Tok) -> Lit:
        if re.fullmatch(r"\d+", tok.text):
            if int(tok.text) >= 2**63:
                raise self.fail(f"integer {tok.text} is out of range", tok)
            return Lit(int(tok.text), Kind.INT)
        return Lit(float(tok.text), Kind.DOUBLE)

    def string(self, tok: _Tok) -> str:
        body = tok.text[1:-1]
        if tok.text[0] == "'":
            body = body.replace("\\'", "'").replace('"', '\\"')
        try:
            value = json.loads(f'"{body}"')
        except ValueError:
            raise self.fail("unsupported escape in string literal", tok) from None
        return str(value)

    def field(self, tok: _Tok) -> Ref:
        known = FIELDS.get(tok.text)
        if known is None:
            raise self.fail(f'unknown field "{tok.text}"', tok, f"; known fields: {known_fields()}")
        if not (self.peek().kind == "op" and self.peek().text == "."):
            return Ref(known)
        dot = self.take()
        key = self.take()
        if key.kind != "name":
            raise self.fail("expected a key name after '.'", key)
        if known.kind == Kind.BOOL_MAP:
            if key.text not in CONSENT_KEYS:
                raise self.fail(
                    f'unknown field "{tok.text}.{key.text}"',
                    key,
                    f"; known purposes: {', '.join(CONSENT_KEYS)}",
                )
        elif known.kind != Kind.STRING_MAP:
            raise self.fail(f"field {tok.text!r} ({known.kind.value}) has no fields", dot)
        return Ref(known, key.text)

    def call(self, name: _Tok) -> Node:
        self.expect("(")
        if name.text == "has":
            arg = self.primary()
            if not (isinstance(arg, Ref) and arg.key):
                raise self.fail("has() takes a map key, e.g. has(attributes.plan)", name)
            self.expect(")")
            return Has(arg.field, arg.key)
        if name.text == "size":
            arg = self.primary()
            if (
                not isinstance(arg, Ref)
                or arg.key
                or arg.field.kind
                not in (
                    Kind.STRING,
                    Kind.STRING_LIST,
                    Kind.STRING_MAP,
                )
            ):
                raise self.fail("size() takes a string, list or map field", name)
            self.expect(")")
            return Size(arg)
        if name.text == "timestamp":
            tok = self.take()
            if tok.kind != "str":
                raise self.fail('timestamp() takes a string, e.g. "2026-01-31T00:00:00Z"', tok)
            text = self.string(tok)
            try:
                moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                raise self.fail(f"{text!r} is not an RFC 3339 timestamp", tok) from None
            if moment.tzinfo is None:
                raise self.fail(f"{text!r} needs a time zone, e.g. Z", tok)
            self.expect(")")
            us = int(moment.timestamp()) * 1_000_000 + moment.microsecond
            return Lit(us, Kind.TIMESTAMP)
        raise self.fail(
            f"unsupported function {name.text!r}; supported: has, size, timestamp", name
        )

    def membership(self, tok: _Tok, item: Node) -> In:
        start = self.peek()
        if start.kind == "op" and start.text == "[":
            self.take()
            items: list[Lit] = []
            while not self.accept("]"):
                if items:
                    self.expect(",")
                lit = self.unary()
                if not isinstance(lit, Lit):
                    raise self.fail("a list after 'in' holds literals only", start)
                items.append(lit)
            for lit in items:
                self.check_compare(tok, item, lit)
            return In(item, tuple(items))
        container = self.primary()
        if (
            not isinstance(container, Ref)
            or container.key
            or container.field.kind
            not in (
                Kind.STRING_LIST,
                Kind.STRING_MAP,
            )
        ):
            raise self.fail("'in' takes a list field, a map field or a list literal", tok)
        self.need(item, Kind.STRING, tok, "'in'")
        return In(item, container)

    # -- types ------------------------------------------------------------------------
    def check_compare(self, tok: _Tok, left: Node, right: Node) -> None:
        a, b = kind_of(left), kind_of(right)
        same = a == b or (a.numeric and b.numeric)
        ordered = tok.text in ("<", "<=", ">", ">=")
        if not same or a in (Kind.STRING_LIST, Kind.STRING_MAP, Kind.BOOL_MAP):
            raise self.fail(f"cannot compare {a.value} with {b.value} using {tok.text!r}", tok)
        if ordered and a == Kind.BOOL:
            raise self.fail(f"booleans have no order for {tok.text!r}", tok)
        if isinstance(left, Lit) and isinstance(right, Lit):
            raise self.fail("compare a field, not two literals", tok)

    def need(self, node: Node, kind: Kind, tok: _Tok, where: str) -> None:
        if kind_of(node) != kind:
            raise self.fail(f"{where} needs a {kind.value}, got a {kind_of(node).value}", tok)


def kind_of(node: Node) -> Kind:
    """The CEL type of a checked node."""
    if isinstance(node, Lit):
        return node.kind
    if isinstance(node, Ref):
        if node.key:
            return Kind.BOOL if node.field.kind == Kind.BOOL_MAP else Kind.STRING
        return node.field.kind
    if isinstance(node, Size):
        return Kind.INT
    return Kind.BOOL


def parse(source: str) -> Node:
    """The checked tree of a segment expression.

    Raises:
        ExpressionError: outside the subset, unknown field or wrong types; the message
            names the position as line:column.
    """
    if not source.strip():
        raise ExpressionError("is empty; write a condition such as purchases_90d > 5")
    if len(source) > _MAX_LENGTH:
        raise ExpressionError(f"is longer than {_MAX_LENGTH} characters")
    return _Parser(source).parse()
