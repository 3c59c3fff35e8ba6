"""Opaque page tokens: a cursor bound to the filters it was issued for, signed by the server.

A token is `<payload>.<mac>`, both base64url without padding. The payload is the JSON
`[cursor_us, cursor_id, filter_tag]`; the MAC is HMAC-SHA256 over it with the first
configured key (`page_tokens.keys`) or, when none is configured, with a key generated once
per database and stored in it (`domain/page_keys.py`), so every worker and replica on that
database agrees. Any listed key verifies, which lets keys rotate without breaking a listing
under way. Pure: no I/O here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Sequence

from switchboard.server.rules.validation import MAX_PAGE_TOKEN, Violations

Cursor = tuple[int, str]
Scope = tuple[str | int, ...]

# Domain separation: the same key material must never yield a valid MAC for other data.
_MAC_CONTEXT = b"switchboard page token v1\x00"
_NOT_OURS = (
    "is not a page token this server issued (altered, cut short, or signed with a key no "
    "longer configured); request the first page again without page_token"
)
_OTHER_FILTERS = (
    "was issued for different filters; repeat the filters of the first page, or request "
    "the first page again without page_token"
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _scope_tag(scope: Scope) -> str:
    # JSON keeps the parts apart: ("a|b", 0) and ("a", "b|0") do not collide.
    return hashlib.sha256(json.dumps(scope).encode()).hexdigest()[:16]


class PageTokens:
    """Issues and checks page tokens with a list of HMAC keys (the first one signs)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("page tokens need at least one key")
        self._keys = list(keys)

    def _mac(self, key: bytes, payload: str) -> bytes:
        return hmac.new(key, _MAC_CONTEXT + payload.encode(), hashlib.sha256).digest()

    def encode(self, cursor: Cursor, scope: Scope) -> str:
        """A URL-safe token for the page after `cursor`, valid only with the same `scope`."""
        raw = json.dumps([cursor[0], cursor[1], _scope_tag(scope)], separators=(",", ":"))
        payload = _b64(raw.encode())
        return f"{payload}.{_b64(self._mac(self._keys[0], payload))}"

    def decode(self, token: str, scope: Scope, v: Violations) -> Cursor | None:
        """The cursor inside `token`, or None for the first page; problems go to `v`."""
        if not token:
            return None
        if len(token) > MAX_PAGE_TOKEN:
            v.add("page_token", f"must be at most {MAX_PAGE_TOKEN} characters")
            return None
        found = self._verified(token)
        if found is None:
            v.add("page_token", _NOT_OURS)
            return None
        at, key, tag = found
        if tag != _scope_tag(scope):
            v.add("page_token", _OTHER_FILTERS)
            return None
        return at, key

    def _verified(self, token: str) -> tuple[int, str, str] | None:
        payload, dot, mac_text = token.partition(".")
        if not dot:
            return None
        try:
            mac = _unb64(mac_text)
        except (binascii.Error, ValueError):
            return None
        # Check every key, so the time taken does not tell which one matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(mac, self._mac(key, payload))
        if not matched:
            return None
        try:  # signed by us, so well formed; checked anyway rather than trusted blindly
            at, key_id, tag = json.loads(_unb64(payload))
        except (binascii.Error, ValueError, TypeError):
            return None
        if not isinstance(at, int) or not isinstance(key_id, str) or not isinstance(tag, str):
            return None
        return at, key_id, tag
