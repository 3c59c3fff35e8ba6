"""Evaluate a checked segment expression as vectorised operations over columns (numpy).

The counterpart of `rules/segment_sql.py` for the in-memory column snapshot: each field is
one array with a slot per contact, and the expression becomes a boolean mask. Strings are
held as small integer codes into a vocabulary (countries, grades and statuses repeat), so
a string test runs once per distinct value and is then looked up by code.

Expressions reaching into `attributes` (a value, `has(...)` or `key in attributes`) are
not handled here: a missing key is CEL's error (SQL's NULL), and the free-form map has no
column. `supports()` says so and the caller falls back to SQL. Everything else has no
missing values, so two-valued logic is exact. Pure.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from switchboard.server.rules.segment_expr import Bool, Cmp, Has, In, Lit, Node, Not, Ref, Size
from switchboard.server.rules.segment_fields import Kind, consent_column

Mask = npt.NDArray[np.bool_]

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


@dataclass(frozen=True, slots=True)
class _Str:
    """A string column: codes into `vocab`."""

    codes: npt.NDArray[np.int32]
    vocab: Sequence[str]

    def lookup(self, fn: Callable[[str], Any], dtype: Any) -> npt.NDArray[Any]:
        table = np.array([fn(v) for v in self.vocab], dtype=dtype)
        return table[self.codes] if len(table) else np.zeros(len(self.codes), dtype=dtype)

    def decoded(self) -> npt.NDArray[Any]:
        return np.array(list(self.vocab), dtype=object)[self.codes]


_Value = Any  # a Python scalar, a numpy array or a _Str


def supports(node: Node) -> bool:
    """Whether `node` can be evaluated here (no `attributes` keys; see the module doc)."""
    if isinstance(node, Has):
        return False
    if isinstance(node, Ref):
        return node.field.kind != Kind.STRING_MAP
    if isinstance(node, (Bool, Cmp)):
        return supports(node.left) and supports(node.right)
    if isinstance(node, Not):
        return supports(node.arg)
    if isinstance(node, In):
        if isinstance(node.container, tuple):
            return supports(node.item)
        # `"vip" in lists`: a literal list name; a key of attributes is not held here.
        return node.container.field.kind == Kind.STRING_LIST and isinstance(node.item, Lit)
    return True  # Lit, Size (sizes are columns)


class _Eval:
    def __init__(self, cols: Columns) -> None:
        self.cols = cols

    def full(self, value: bool) -> Mask:
        return np.full(self.cols.size, value, dtype=np.bool_)

    def cond(self, node: Node) -> Mask:
        if isinstance(node, Bool):
            left, right = self.cond(node.left), self.cond(node.right)
            return (left & right) if node.op == "&&" else (left | right)
        if isinstance(node, Not):
            return ~self.cond(node.arg)
        if isinstance(node, Cmp):
            return self.compare(node.op, self.value(node.left), self.value(node.right))
        if isinstance(node, In):
            return self.membership(node)
        return self.compare("==", self.value(node), 1)  # a bool field or literal

    def membership(self, node: In) -> Mask:
        container = node.container
        if isinstance(container, tuple):
            mask = self.full(False)
            item = self.value(node.item)
            for lit in container:
                mask |= self.compare("==", item, lit.value)
            return mask
        assert isinstance(node.item, Lit)  # supports() admitted only this shape
        return self.cols.listed(str(node.item.value)).copy()

    def compare(self, op: str, left: _Value, right: _Value) -> Mask:
        fn = _OPS[op]
        if isinstance(left, _Str) and isinstance(right, _Str):
            left, right = left.decoded(), right.decoded()
        elif isinstance(left, _Str) and op in ("==", "!=") and isinstance(right, str):
            # One code compare instead of a gather through the vocabulary.
            code = list(left.vocab).index(right) if right in left.vocab else -1
            same: Mask = left.codes == code
            return same if op == "==" else ~same
        elif isinstance(left, _Str):
            return left.lookup(lambda v: fn(v, right), np.bool_)
        elif isinstance(right, _Str):
            return right.lookup(lambda v: fn(left, v), np.bool_)
        result = fn(left, right)
        if isinstance(result, np.ndarray):
            return result.astype(np.bool_, copy=False)
        return self.full(bool(result))

    def value(self, node: Node) -> _Value:
        if isinstance(node, Lit):
            return int(node.value) if isinstance(node.value, bool) else node.value
        if isinstance(node, Ref):
            if node.field.kind == Kind.BOOL_MAP:
                return self.cols.numbers(consent_column(node.key))
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
        return self.cond(node).astype(np.int64)


def evaluate(node: Node, cols: Columns) -> Mask:
    """The contacts `node` selects, as a mask over the snapshot's slots.

    Raises:
        ValueError: the node is outside what `supports()` admits.
    """
    if not supports(node):
        raise ValueError("expression reads attributes: evaluate it in SQL")
    return _Eval(cols).cond(node)
