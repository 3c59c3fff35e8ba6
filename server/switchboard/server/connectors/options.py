"""Small validators for adapter options shared by the vendor adapters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: The consent purposes a connector may declare (see `base.purposes_of`).
KNOWN_PURPOSES = frozenset({"email_marketing", "analytics", "personalization", "advertising"})


def string_list(name: str, key: str, value: Any) -> tuple[str, ...]:
    """A list of non-empty strings, or a settings error naming the option."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"connector {name!r}: option {key!r} must be a list of strings")
    return tuple(value)


def purposes_option(
    name: str, options: Mapping[str, Any], default: Iterable[str] = ()
) -> frozenset[str]:
    """The `purposes` option: consent purposes from `KNOWN_PURPOSES` (default `default`)."""
    purposes = string_list(name, "purposes", options.get("purposes", list(default)))
    if unknown := sorted(set(purposes) - KNOWN_PURPOSES):
        raise ValueError(
            f"connector {name!r}: unknown purpose(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(KNOWN_PURPOSES))}"
        )
    return frozenset(purposes)
