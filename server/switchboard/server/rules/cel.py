"""The one place CEL (Common Expression Language) programs are compiled and run.

Uses the `cel` module of the `common-expression-language` package (a Rust interpreter).
Segments use it as the reference semantics for their SQL translation; step conditions use it
directly. Pure: no I/O here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cel


class CelSyntaxError(ValueError):
    """The text is not a CEL expression; the message carries the library's line:column."""


def compile_expression(source: str) -> Any:
    """A compiled program for `source`.

    Raises:
        CelSyntaxError: `source` does not parse.
    """
    try:
        return cel.compile(source)
    except ValueError as exc:
        # The library's message repeats the source after a fixed prefix; keep its
        # "<input>:L:C: ..." part, which is what a caller can act on.
        text = str(exc)
        start = text.find("<input>:")
        detail = text[start + len("<input>:") :].split("\n")[0] if start >= 0 else text
        raise CelSyntaxError(detail.strip()) from exc


def evaluate_bool(program: Any, activation: Mapping[str, Any]) -> bool:
    """Whether `program` yields true over `activation`; an evaluation error counts as false.

    CEL reports a missing map key (e.g. an attribute the contact lacks) as an error, which
    `&&`/`||` absorb when the other side decides; an error left at the top means "no".
    """
    try:
        return program.execute(dict(activation)) is True
    except (KeyError, RuntimeError, TypeError, ValueError):
        return False
