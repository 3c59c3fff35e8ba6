"""API keys: generated with 256 random bits, stored as SHA-256 digests, compared in constant time.

Why SHA-256 and not bcrypt: bcrypt and its kin are slow on purpose, to protect low-entropy
passwords from guessing. A key here carries 256 random bits, so guessing is hopeless even
against a fast hash, and a slow hash would add tens of milliseconds to every call.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping

from switchboard.server.auth.principal import Principal
from switchboard.server.config.security import CallerSettings

KEY_PREFIX = "sb_"


def generate_key() -> str:
    """A new API key: the prefix and 32 random bytes, URL-safe base64."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """The hex SHA-256 of a key: what the settings store."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ApiKeyVerifier:
    """Finds the caller owning a key. Several digests per caller allow rotation."""

    def __init__(self, callers: Mapping[str, CallerSettings]) -> None:
        self._entries = [
            (bytes.fromhex(digest), name, frozenset(caller.scopes))
            for name, caller in callers.items()
            for digest in caller.key_sha256
        ]

    def verify(self, key: str) -> Principal | None:
        """The key's caller, or None. Every digest is compared, whether or not one matched,
        with `hmac.compare_digest`, so timing tells nothing about which digest was close."""
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        found: Principal | None = None
        for stored, name, scopes in self._entries:
            if hmac.compare_digest(stored, digest) and found is None:
                found = Principal(name=name, scopes=scopes, method="api_key")
        return found
