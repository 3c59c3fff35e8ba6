"""JSON templates rendered in Jinja2's immutable sandbox.

A template is a JSON-like structure (tables, arrays, scalars) whose strings are Jinja2
templates. A string that is exactly one expression, `"{{ attributes.amount }}"`, keeps the
expression's own type (a number stays a number, a list a list); any other string renders to
a string. So a body is written as data, and no value can break the JSON around it.

Why Jinja2's sandbox rather than JSONata: the connector needs string building (URLs,
headers) as much as restructuring, Jinja2 is already a well-kept dependency of the docs
toolchain, and `ImmutableSandboxedEnvironment` refuses attribute access to internals and
mutation of the data it is given (a template cannot alter the payload or reach Python).
In request templates undefined names fail (`StrictUndefined`): a missing field is an error,
not an empty value sent to the tool; a template that wants an optional field says
`contact.phone | default(none)`. Templates over a vendor's answer (`lenient=True`) read
optional data: a missing field there is `none` (falsy in a condition).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, StrictUndefined, TemplateError, Undefined, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from switchboard.server.errors import PermanentConnectorError

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_LENIENT = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
_ONE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.S)


@dataclass(frozen=True, slots=True)
class _Part:
    where: str
    source: str
    render: Any  # (context) -> Any, a compiled template or expression
    lenient: bool


class JsonTemplate:
    """A compiled JSON template; `render(context)` builds the value."""

    def __init__(
        self, where: str, value: Any, names: Collection[str], lenient: bool = False
    ) -> None:
        """Compile `value`; `where` names it in errors, `names` are the variables it may use.

        `lenient`: a missing field is `none` instead of an error (for answers).

        Raises:
            ValueError: a syntax error or an unknown variable, naming the place.
        """
        self.where = where
        self._tree = _compile(where, value, frozenset(names), lenient)

    def render(self, context: Mapping[str, Any]) -> Any:
        """The value for `context`.

        Raises:
            PermanentConnectorError: a field the template needs is missing or unusable.
        """
        return _render(self._tree, context)


def _compile(where: str, value: Any, names: frozenset[str], lenient: bool) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _compile(f"{where}.{k}", v, names, lenient) for k, v in value.items()}
    if isinstance(value, list):
        return [_compile(f"{where}[{i}]", v, names, lenient) for i, v in enumerate(value)]
    if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
        return value
    try:
        _check_names(where, value, names)
        env = _LENIENT if lenient else _ENV
        whole = _ONE_EXPRESSION.match(value)
        if whole:
            return _Part(where, value, env.compile_expression(whole["expr"], False), lenient)
        return _Part(where, value, env.from_string(value).render, lenient)
    except TemplateError as exc:
        raise ValueError(f"{where}: template error: {exc}") from exc


def _check_names(where: str, source: str, names: frozenset[str]) -> None:
    used = meta.find_undeclared_variables(_ENV.parse(source))
    if unknown := sorted(used - names):
        raise ValueError(
            f"{where}: unknown name(s) {', '.join(unknown)} in {source!r}; "
            f"templates here may use {', '.join(sorted(names))}"
        )


def _render(node: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        return {k: _render(v, context) for k, v in node.items()}
    if isinstance(node, list):
        return [_render(v, context) for v in node]
    if not isinstance(node, _Part):
        return node
    try:
        value = node.render(context)
        if isinstance(value, Undefined):
            if node.lenient:
                return None
            str(value)  # a StrictUndefined raises here, naming what was missing
        return _plain(value)
    except PermanentConnectorError:
        raise
    except Exception as exc:  # any failure inside a user's template is the template's
        raise PermanentConnectorError(f"template {node.where}: {exc}") from exc


def _plain(value: Any) -> Any:
    """Tuples and other sequences from filters become JSON arrays."""
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
