"""Opaque page tokens: a cursor bound to the filters it was issued for."""

from __future__ import annotations

import base64
import hashlib
import json

from switchboard.server.rules.validation import MAX_PAGE_TOKEN, Violations


def _scope_tag(scope: str) -> str:
    return hashlib.sha256(scope.encode()).hexdigest()[:12]


def encode_token(cursor: tuple[int, str], scope: str) -> str:
    """A URL-safe token for the page after `cursor`."""
    raw = json.dumps([cursor[0], cursor[1], _scope_tag(scope)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, scope: str, v: Violations) -> tuple[int, str] | None:
    """The cursor inside `token`, or None for the first page; problems go to `v`."""
    if not token:
        return None
    if len(token) > MAX_PAGE_TOKEN:
        v.add("page_token", f"must be at most {MAX_PAGE_TOKEN} characters")
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        at, key, tag = json.loads(raw)
        if not isinstance(at, int) or not isinstance(key, str) or not isinstance(tag, str):
            raise ValueError
    except (ValueError, TypeError):
        v.add("page_token", "is not a token this server issued; start again without one")
        return None
    if tag != _scope_tag(scope):
        v.add("page_token", "was issued for different filters; keep the filters unchanged")
        return None
    return at, key
