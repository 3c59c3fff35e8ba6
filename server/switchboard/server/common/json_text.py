"""Compact JSON text for what the store keeps as JSON (run plans, connector state).

orjson rather than the standard library: a run's plan is encoded when it starts and decoded
at every claim, and an import chunk's plan is re-encoded by each part of the chunk. For a
100-contact chunk plan (41 KB) json.dumps took 334 µs against orjson's 54, json.loads 234 µs
against 114. The text is the same JSON (compact, keys in insertion order) except that
non-ASCII stays UTF-8 rather than `\\u` escapes, and a NaN or infinity is written as `null`
(json wrote `NaN`, which is not JSON).
"""

from __future__ import annotations

import json
from typing import Any

import orjson

#: Like json.dumps: keys that are not strings (ints, enums) are written as strings.
_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> str:
    """`value` as compact JSON text."""
    return orjson.dumps(value, option=_OPTIONS).decode()


def loads(text: str | bytes) -> Any:
    """The value of JSON `text`, also of text json.dumps wrote before (`NaN`, `Infinity`)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        # Rows written before orjson may hold json's non-standard NaN: a stored plan that
        # no longer decoded would stop its run's delivery.
        return json.loads(text)
