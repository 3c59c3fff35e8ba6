"""CEL (Common Expression Language) expressions: compiled once, evaluated many times.

A thin wrapper over the `cel` module (PyPI `common-expression-language`, Rust-backed) shared
by every rule written in CEL (step conditions, segments). Compiling checks the syntax and
that every top-level name is one the caller declares; an error names the position
(`line:column`) and, for an unknown name, the names that exist. Evaluating returns plain
Python values; any failure is a `CelEvalError` with the library's message.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Set
from typing import Any

import cel

_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*?)(?:\n|$)")


class CelError(ValueError):
    """An expression that does not compile; the message names the position and the field."""


class CelEvalError(RuntimeError):
    """An expression that compiled but could not be evaluated against these values."""


def compile_expression(
    expression: str,
    names: Set[str],
    fields: Mapping[str, Set[str]] | None = None,
) -> cel.Program:
    """Compile `expression`, allowing only the top-level `names`.

    Args:
        expression: The CEL source.
        names: The variables the expression may use.
        fields: For a variable whose entries are known (a record, not a free map), the
            entries it has: `contact.plan` is then an error naming `plan`.

    Raises:
        CelError: a syntax error, an unknown variable or an unknown entry, with its
            position.
    """
    if not expression.strip():
        raise CelError("the expression is empty")
    try:
        program = cel.compile(expression)
    except ValueError as exc:
        raise CelError(_syntax_message(str(exc))) from None
    for name in program.variables():
        if name not in names:
            at = _position(expression, rf"(?<![\w.]){re.escape(name)}\b")
            known = ", ".join(sorted(names))
            raise CelError(f"unknown field {name!r} at {at} (fields: {known})")
    for name, entries in (fields or {}).items():
        pattern = rf"(?<![\w.]){re.escape(name)}\s*\.\s*([A-Za-z_]\w*)"
        for match in re.finditer(pattern, expression):
            if match.group(1) not in entries:
                at = _position(expression, re.escape(match.group(0)))
                known = ", ".join(sorted(entries))
                raise CelError(
                    f"unknown field '{name}.{match.group(1)}' at {at} ({name} has: {known})"
                )
    return program


def evaluate(program: cel.Program, variables: Mapping[str, Any]) -> Any:
    """The value of `program` over `variables`.

    Raises:
        CelEvalError: a missing entry, a type mismatch, a division by zero, ...
    """
    try:
        return program.execute(dict(variables))
    except Exception as exc:  # the library raises KeyError, TypeError, RuntimeError, ...
        raise CelEvalError(_eval_message(exc)) from None


def _position(expression: str, pattern: str) -> str:
    match = re.search(pattern, expression)
    offset = match.start() if match else 0
    line = expression.count("\n", 0, offset) + 1
    column = offset - (expression.rfind("\n", 0, offset) + 1) + 1
    return f"{line}:{column}"


def _syntax_message(message: str) -> str:
    match = _POSITION.search(message)
    if match is None:
        return f"syntax error: {message.splitlines()[0] if message else 'invalid expression'}"
    line, column, what = match.groups()
    return f"syntax error at {line}:{column}: {what.removeprefix('Syntax error: ')}"


def _eval_message(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"no entry {exc.args[0]!r} (use has() to test for it)"
    return str(exc).split(". Check that")[0] or type(exc).__name__
