"""Dotted paths into a step's payload (`contact.email`, `attributes.order_id`).

Vendor adapters map payload fields to vendor fields through such paths, so the mapping is
settings (a table of name → path), not code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def lookup(document: Any, path: str) -> Any:
    """The value at `path` (dots between keys, digits index lists), or None if absent."""
    node = document
    for part in path.split(".") if path else []:
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def path_map_option(
    name: str, options: Mapping[str, Any], key: str, default: Mapping[str, str]
) -> dict[str, str]:
    """A `{target: payload path}` option, checked; `default` when not set.

    Raises:
        ValueError: naming the connector and option when it is not a table of strings.
    """
    value = options.get(key, default)
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ValueError(
            f'connector {name!r}: option {key!r} must be a table of name = "payload.path"'
        )
    return dict(value)
