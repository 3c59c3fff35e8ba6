"""Dotted paths into JSON-like documents (`contact.email`, `attributes.application_id`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def value_at(document: Any, path: str) -> Any:
    """The value at `path` (keys joined by dots) in nested mappings, or None if absent."""
    value = document
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value
