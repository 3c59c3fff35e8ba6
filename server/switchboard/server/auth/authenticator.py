"""Turns a call's `authorization: Bearer …` header into a `Principal`."""

from __future__ import annotations

from collections.abc import Iterable

from switchboard.server.auth.api_keys import KEY_PREFIX, ApiKeyVerifier
from switchboard.server.auth.jwt_tokens import JwtVerifier
from switchboard.server.auth.principal import Principal
from switchboard.server.config.security import AuthSettings
from switchboard.server.errors import Unauthenticated

_BEARER = "bearer "


class Authenticator:
    """API keys (prefix `sb_`) and, when a JWKS is configured, JWT access tokens."""

    def __init__(self, settings: AuthSettings) -> None:
        self._keys = ApiKeyVerifier(settings.callers)
        self._jwt = JwtVerifier(settings.jwt) if settings.jwt.enabled else None

    async def authenticate(self, metadata: Iterable[tuple[str, str | bytes]]) -> Principal:
        """The caller, or `Unauthenticated` saying what is wrong (never which key was close)."""
        values = [v for k, v in metadata if k == "authorization"]
        if not values:
            raise Unauthenticated("missing credentials: send 'authorization: Bearer <key>'")
        value = values[0] if isinstance(values[0], str) else values[0].decode("latin-1")
        if not value.lower().startswith(_BEARER):
            raise Unauthenticated("the authorization header must be 'Bearer <key or token>'")
        token = value[len(_BEARER) :].strip()
        if token.startswith(KEY_PREFIX):
            principal = self._keys.verify(token)
            if principal is None:
                raise Unauthenticated("unknown API key")
            return principal
        if self._jwt is not None and token.count(".") == 2:
            return await self._jwt.verify(token)
        raise Unauthenticated("the bearer credential is neither an API key nor an accepted JWT")
