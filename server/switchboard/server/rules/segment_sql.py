"""Translate a checked segment expression into a SQL condition over `segment_facts f`.

SQL's three-valued logic stands in for CEL's errors: a key missing from `attributes` is an
error in CEL and NULL here, and both are absorbed by `&&`/`||` the same way (false && error
is false, true || error is true) and leave a contact out when they reach the top. The
property test in tests/rules/test_segment_sql.py holds the two to the same answers. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from switchboard.server.rules.segment_expr import (
    Bool,
    Cmp,
    Has,
    In,
    Lit,
    Node,
    Not,
    Ref,
    Size,
)
from switchboard.server.rules.segment_fields import Kind, consent_column


@dataclass(frozen=True, slots=True)
class Dialect:
    """What differs between SQLite and PostgreSQL in the translated condition."""

    mark: str  # the parameter placeholder
    attribute: str  # the value of one attribute key (a parameter), NULL when missing
    has_attribute: str

    def attr_arg(self, key: str) -> str:
        """The parameter that names one attribute key."""
        return '$."' + key + '"' if self.mark == "?" else key


SQLITE = Dialect(
    mark="?",
    attribute="json_extract(f.attributes, ?)",
    has_attribute="(json_type(f.attributes, ?) IS NOT NULL)",
)
POSTGRES = Dialect(
    mark="%s",
    attribute="(f.attributes ->> %s)",
    has_attribute="jsonb_exists(f.attributes, %s)",
)

_OPS = {"<": "<", "<=": "<=", ">": ">", ">=": ">=", "==": "=", "!=": "<>"}
# An uncorrelated subquery: the planner reads the list's members once along the
# (list, contact_id) key instead of probing it for every candidate row.
_LIST_MEMBER = "(f.contact_id IN (SELECT l.contact_id FROM contact_lists l WHERE l.list = {m}))"


class _Sql:
    def __init__(self, dialect: Dialect) -> None:
        self.d = dialect
        self.params: list[Any] = []

    def param(self, value: Any) -> str:
        self.params.append(int(value) if isinstance(value, bool) else value)
        return self.d.mark

    def cond(self, node: Node) -> str:
        """`node` as a SQL truth value."""
        if isinstance(node, Bool):
            op = "AND" if node.op == "&&" else "OR"
            return f"({self.cond(node.left)} {op} {self.cond(node.right)})"
        if isinstance(node, Not):
            return f"(NOT {self.cond(node.arg)})"
        if isinstance(node, Cmp):
            return f"({self.value(node.left)} {_OPS[node.op]} {self.value(node.right)})"
        if isinstance(node, Has):
            return self.d.has_attribute.replace(self.d.mark, self.param(self.d.attr_arg(node.key)))
        if isinstance(node, In):
            return self.membership(node)
        return f"({self.value(node)} = 1)"  # a bool field or literal

    def membership(self, node: In) -> str:
        if isinstance(node.container, tuple):
            if not node.container:
                return "(1 = 0)"
            # The item first: its parameters (an attribute key) come before the literals'.
            item = self.value(node.item)
            marks = ", ".join(self.param(lit.value) for lit in node.container)
            return f"({item} IN ({marks}))"
        item = self.value(node.item)
        if node.container.field.kind == Kind.STRING_LIST:
            return _LIST_MEMBER.format(m=item)
        # `key in attributes`: the key is a value here, so build the JSON path in SQL.
        if self.d.mark == "?":
            return f"(json_type(f.attributes, '$.\"' || {item} || '\"') IS NOT NULL)"
        return f"jsonb_exists(f.attributes, {item})"

    def value(self, node: Node) -> str:
        """`node` as a SQL scalar."""
        if isinstance(node, Lit):
            return self.param(node.value)
        if isinstance(node, Ref):
            if node.field.kind == Kind.BOOL_MAP:
                return f"f.{consent_column(node.key)}"
            if node.field.kind == Kind.STRING_MAP:
                return self.d.attribute.replace(self.d.mark, self.param(self.d.attr_arg(node.key)))
            return f"f.{node.field.column}"
        if isinstance(node, Size):
            kind = node.arg.field.kind
            if kind == Kind.STRING_LIST:
                return "f.list_count"
            if kind == Kind.STRING_MAP:
                return "f.attribute_count"
            return f"length(f.{node.arg.field.column})"
        # NULL (CEL's error) stays NULL rather than becoming false.
        return f"(CASE WHEN {self.cond(node)} THEN 1 WHEN NOT {self.cond(node)} THEN 0 END)"


def to_sql(node: Node, dialect: Dialect) -> tuple[str, list[Any]]:
    """A WHERE condition over `segment_facts f` and its parameters."""
    sql = _Sql(dialect)
    return sql.cond(node), sql.params
