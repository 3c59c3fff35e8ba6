"""Evaluate a checked segment expression as vectorised operations over columns (numpy).

The counterpart of `rules/segment_sql.py` for the in-memory column snapshot: each field is
one array with a slot per contact, and the expression becomes a boolean mask. Strings are
held as small integer codes into a vocabulary (countries, grades and statuses repeat), so
a string test runs once per distinct value and is then looked up by code.

Free-form `attributes` are columns too, one per key an expression names: codes into that
key's vocabulary, -1 where the contact has no such key. A missing key is CEL's error and
SQL's NULL, so conditions are evaluated in three-valued logic as `rules/segment_sql.py`
does: each condition is a pair of masks (certainly true, certainly false) and a contact in
neither is "unknown", which `&&`/`||` absorb as SQL does and which leaves the contact out at
the top. Keys that a JSON path might spell differently in the two dialects (quotes,
backslashes, non-ASCII: only a `key in attributes` literal can hold them) and
`has()` on other maps stay in SQL; `supports()` says which. Pure.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from switchboard.server.rules.segment_expr import Bool, Cmp, Has, In, Lit, Node, Not, Ref, Size
from switchboard.server.rules.segment_fields import Kind, consent_column

Mask = npt.NDArray[np.bool_]
# Keys named the same by SQLite's `$."key"` path and PostgreSQL's `->>`/`jsonb_exists`.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,200}")

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


class Columns(Protocol):
    """The snapshot as the evaluator reads it: one slot per contact, `size` slots."""

    @property
    def size(self) -> int:
        """How many slots each array has."""
        ...

    def numbers(self, column: str) -> npt.NDArray[Any]:
        """A numeric column (ints, floats, 0/1 for booleans)."""
        ...

    def strings(self, column: str) -> tuple[npt.NDArray[np.int32], Sequence[str]]:
        """A string column as codes and the vocabulary they index."""
        ...

    def listed(self, name: str) -> Mask:
        """Whether each contact is on the list `name`."""
        ...

    def attribute(self, key: str) -> tuple[npt.NDArray[np.int32], Sequence[str], Mapping[str, int]]:
        """One attribute key: codes (-1 where missing), vocabulary and code of each value."""
        ...


@dataclass(frozen=True, slots=True)
class _Str:
    """A string column: codes into `vocab`."""

    codes: npt.NDArray[np.int32]
    vocab: Sequence[str]
    index: Mapping[str, int] | None = None
    present: Mask | None = None  # None: every contact has a value

    def lookup(self, fn: Callable[[str], Any], dtype: Any) -> npt.NDArray[Any]:
        # One filler entry past the end: code -1 (missing) lands there, masked out later.
        table = np.array([*(fn(v) for v in self.vocab), fn("")], dtype=dtype)
        return table[self.codes]

    def decoded(self) -> npt.NDArray[Any]:
        return np.array([*self.vocab, ""], dtype=object)[self.codes]

    def code(self, value: str) -> int:
        if self.index is not None:
            return self.index.get(value, -2)
        return list(self.vocab).index(value) if value in self.vocab else -2


@dataclass(frozen=True, slots=True)
class _Num:
    """A truth value used as a value (`(a == b) == true`): 1, 0, or missing (unknown)."""

    values: npt.NDArray[np.int64]
    present: Mask


@dataclass(frozen=True, slots=True)
class _Tri:
    """A condition in three-valued logic: where it is certainly true, certainly false."""

    yes: Mask
    no: Mask


_Value = Any  # a Python scalar, a numpy array, a _Str or a _Num


def _present(value: _Value) -> Mask | None:
    return value.present if isinstance(value, (_Str, _Num)) else None


def plain_key(key: str) -> bool:
    """Whether the snapshot may hold attribute `key` (see the module docstring)."""
    return _PLAIN_KEY.fullmatch(key) is not None


def attribute_keys(node: Node) -> set[str]:
    """The attribute keys an expression reads (values, `has()`, `"key" in attributes`)."""
    if isinstance(node, (Bool, Cmp)):
        return attribute_keys(node.left) | attribute_keys(node.right)
    if isinstance(node, Not):
        return attribute_keys(node.arg)
    if isinstance(node, Ref):
        return {node.key} if node.field.kind == Kind.STRING_MAP and node.key else set()
    if isinstance(node, Has):
        return {node.key}
    if isinstance(node, In):
        keys = attribute_keys(node.item)
        if not isinstance(node.container, tuple) and node.container.field.kind == Kind.STRING_MAP:
            keys |= {str(node.item.value)} if isinstance(node.item, Lit) else set()
        return keys
    return set()


def supports(node: Node) -> bool:
    """Whether `node` can be evaluated here (see the module docstring)."""
    if isinstance(node, Has):
        return node.field.kind == Kind.STRING_MAP and plain_key(node.key)
    if isinstance(node, Ref):
        return node.field.kind != Kind.STRING_MAP or plain_key(node.key)
    if isinstance(node, (Bool, Cmp)):
        return supports(node.left) and supports(node.right)
    if isinstance(node, Not):
        return supports(node.arg)
    if isinstance(node, In):
        if isinstance(node.container, tuple):
            return supports(node.item)
        # `"vip" in lists`, `"plan" in attributes`: a literal name; a computed one is SQL's.
        if not isinstance(node.item, Lit):
            return False
        return node.container.field.kind == Kind.STRING_LIST or plain_key(str(node.item.value))
    return True  # Lit, Size (sizes are columns)


class _Eval:
    def __init__(self, cols: Columns) -> None:
        self.cols = cols

    def full(self, value: bool) -> Mask:
        return np.full(self.cols.size, value, dtype=np.bool_)

    def cond(self, node: Node) -> _Tri:
        if isinstance(node, Bool):
            a, b = self.cond(node.left), self.cond(node.right)
            if node.op == "&&":
                return _Tri(a.yes & b.yes, a.no | b.no)
            return _Tri(a.yes | b.yes, a.no & b.no)
        if isinstance(node, Not):
            arg = self.cond(node.arg)
            return _Tri(arg.no, arg.yes)
        if isinstance(node, Cmp):
            return self.compare(node.op, self.value(node.left), self.value(node.right))
        if isinstance(node, Has):
            held = self.attribute(node.key).present
            assert held is not None
            return _Tri(held, ~held)
        if isinstance(node, In):
            return self.membership(node)
        return self.compare("==", self.value(node), 1)  # a bool field or literal

    def membership(self, node: In) -> _Tri:
        container = node.container
        if isinstance(container, tuple):
            if not container:
                return _Tri(self.full(False), self.full(True))  # SQL's (1 = 0)
            item = self.value(node.item)
            hit = self.full(False)
            for lit in container:
                hit |= self.raw("==", item, lit.value)
            return self.known(hit, _present(item), None)
        assert isinstance(node.item, Lit)  # supports() admitted only this shape
        if container.field.kind == Kind.STRING_MAP:
            held = self.attribute(str(node.item.value)).present
            assert held is not None
            return _Tri(held, ~held)
        listed = self.cols.listed(str(node.item.value))
        return _Tri(listed.copy(), ~listed)

    def compare(self, op: str, left: _Value, right: _Value) -> _Tri:
        return self.known(self.raw(op, left, right), _present(left), _present(right))

    @staticmethod
    def known(hit: Mask, a: Mask | None, b: Mask | None) -> _Tri:
        """`hit` where both sides have a value; unknown (neither) where one is missing."""
        if a is None and b is None:
            return _Tri(hit, ~hit)
        both = a if b is None else b if a is None else a & b
        assert both is not None
        return _Tri(hit & both, ~hit & both)

    def raw(self, op: str, left: _Value, right: _Value) -> Mask:
        """`left op right` slot by slot, whatever a missing value holds."""
        fn = _OPS[op]
        left = left.values if isinstance(left, _Num) else left
        right = right.values if isinstance(right, _Num) else right
        if isinstance(left, _Str) and isinstance(right, _Str):
            left, right = left.decoded(), right.decoded()
        elif isinstance(left, _Str) and op in ("==", "!=") and isinstance(right, str):
            # One code compare instead of a gather through the vocabulary.
            same: Mask = left.codes == left.code(right)
            return same if op == "==" else ~same
        elif isinstance(left, _Str):
            return left.lookup(lambda v: fn(v, right), np.bool_)
        elif isinstance(right, _Str):
            return right.lookup(lambda v: fn(left, v), np.bool_)
        result = fn(left, right)
        if isinstance(result, np.ndarray):
            return result.astype(np.bool_, copy=False)
        return self.full(bool(result))

    def attribute(self, key: str) -> _Str:
        codes, vocab, index = self.cols.attribute(key)
        return _Str(codes, vocab, index, codes >= 0)

    def value(self, node: Node) -> _Value:
        if isinstance(node, Lit):
            return int(node.value) if isinstance(node.value, bool) else node.value
        if isinstance(node, Ref):
            if node.field.kind == Kind.BOOL_MAP:
                return self.cols.numbers(consent_column(node.key))
            if node.field.kind == Kind.STRING_MAP:
                return self.attribute(node.key)
            if node.field.kind in (Kind.STRING,):
                return _Str(*self.cols.strings(node.field.column))
            return self.cols.numbers(node.field.column)
        if isinstance(node, Size):
            kind = node.arg.field.kind
            if kind == Kind.STRING_LIST:
                return self.cols.numbers("list_count")
            if kind == Kind.STRING_MAP:
                return self.cols.numbers("attribute_count")
            # SQL's length() counts characters, as Python's len() does.
            return _Str(*self.cols.strings(node.arg.field.column)).lookup(len, np.int64)
        # A condition as a value: SQL's CASE keeps unknown (NULL) rather than false.
        tri = self.cond(node)
        present = tri.yes | tri.no
        if present.all():
            return tri.yes.astype(np.int64)
        return _Num(tri.yes.astype(np.int64), present)


def evaluate(node: Node, cols: Columns) -> Mask:
    """The contacts `node` selects, as a mask over the snapshot's slots.

    Raises:
        ValueError: the node is outside what `supports()` admits.
    """
    if not supports(node):
        raise ValueError("expression reads attributes the snapshot does not hold: use SQL")
    return _Eval(cols).cond(node).yes
