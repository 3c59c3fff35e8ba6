"""The effective settings as TOML, with secrets masked (`switchboard config show`).

A value is masked when its key looks secret (password, secret, token, API key, key hash,
authorization, ...), when it is a `whsec_` signing secret wherever it sits, and a password
inside a URL (`redis://user:pw@host`). A reference to a secret (`env:NAME`, `file:PATH`)
is shown as it is: it names where the secret lives, not the secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import tomli_w

from switchboard.server.config.settings import Settings

MASK = "<masked>"
REFERENCES = ("env:", "file:")

_SECRET_KEY = re.compile(
    r"secret|passw|token|api[_-]?key|key[_-]?sha256|private[_-]?key|access[_-]?key"
    r"|write[_-]?key|credential|authorization|cookie|signature",
    re.IGNORECASE,
)


def render(settings: Settings, sources: str) -> str:
    """`settings` as a TOML document, secrets masked, under a comment naming `sources`."""
    # TOML has no null: a key left out means "not set", which is what None means here.
    values = masked(settings.model_dump(mode="json", exclude_none=True))
    header = f"# Effective settings: {sources}. Secrets are masked.\n\n"
    return header + tomli_w.dumps(values)


def masked(values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `values` with every secret-looking value replaced by `MASK`."""
    return {key: _mask(value, bool(_SECRET_KEY.search(key))) for key, value in values.items()}


def _mask(value: Any, secret_key: bool) -> Any:
    if isinstance(value, Mapping):
        # A table's own name is not a secret (a caller may be called "token-service").
        return masked(value)
    if isinstance(value, list):
        return [_mask(item, secret_key) for item in value]
    if not isinstance(value, str) or not value or value.startswith(REFERENCES):
        return value
    if secret_key or value.startswith("whsec_"):
        return MASK
    return _without_url_password(value)


def _without_url_password(value: str) -> str:
    if "://" not in value:
        return value
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:  # not a URL after all (e.g. a bad port): nothing to mask in it
        return value
    if not password:
        return value
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{parts.username or ''}:{MASK}@{host}"
    return urlunsplit(parts._replace(netloc=netloc))
