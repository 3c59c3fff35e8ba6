"""Secret options of vendor adapters: always a reference (`env:NAME` or `file:PATH`).

A settings file is shared, printed by `switchboard config show` and kept in version control,
so an adapter refuses a secret written into it literally. The resolved value is held by the
adapter only; error messages name the reference, never the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switchboard.server.config.security import resolve_secret

_PREFIXES = ("env:", "file:")


def secret_option(name: str, options: Mapping[str, Any], key: str) -> str:
    """Resolve the required secret option `key` of connector `name`.

    Raises:
        ValueError: the option is missing, not a reference, or cannot be resolved.
    """
    reference = options.get(key)
    if not isinstance(reference, str) or not reference:
        raise ValueError(f"connector {name!r}: option {key!r} is required (env:NAME or file:PATH)")
    return resolve_reference(f"connector {name!r}: option {key!r}", reference)


def resolve_reference(where: str, reference: str) -> str:
    """Resolve one secret reference; `where` names the setting in the error.

    Raises:
        ValueError: not `env:`/`file:`, or the variable or file is missing or empty.
    """
    if not reference.startswith(_PREFIXES):
        raise ValueError(
            f"{where} must be a secret reference (env:NAME or file:PATH), not the secret itself"
        )
    try:
        value = resolve_secret(reference).decode()
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    if not value:
        raise ValueError(f"{where}: {reference.split(':', 1)[0]} reference resolves to nothing")
    return value
