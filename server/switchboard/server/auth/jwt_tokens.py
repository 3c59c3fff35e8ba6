"""JWT bearer tokens (OAuth 2.0 access tokens) checked against a JWKS.

Issuer, audience, expiry and not-before are checked, the algorithm must be one of the pinned
ones (never `none`, never HMAC: the keys are public), and the key is chosen by `kid`.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import jwt

from switchboard.server.auth.principal import Principal
from switchboard.server.config.security import JwtSettings
from switchboard.server.errors import Unauthenticated


class JwtVerifier:
    """Verifies tokens with keys from a JWKS file (read once) or URL (fetched, cached)."""

    def __init__(self, settings: JwtSettings) -> None:
        self._settings = settings
        self._keys: jwt.PyJWKSet | None = None
        self._client: jwt.PyJWKClient | None = None
        if settings.jwks_file:
            data = json.loads(Path(settings.jwks_file).read_text("utf-8"))
            self._keys = jwt.PyJWKSet.from_dict(data)
        elif settings.jwks_url:
            self._client = jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300)

    async def verify(self, token: str) -> Principal:
        """The token's subject and scopes.

        Raises:
            Unauthenticated: the token is malformed, expired, not yet valid, for another
                issuer or audience, signed with another algorithm or an unknown key.
        """
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") not in self._settings.algorithms:
                raise Unauthenticated(
                    f"token algorithm {header.get('alg')!r} is not accepted "
                    f"(accepted: {', '.join(self._settings.algorithms)})"
                )
            key = await self._key(header)
            claims = jwt.decode(
                token,
                key=key,
                algorithms=self._settings.algorithms,
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid bearer token: {exc}") from exc
        return Principal(name=str(claims["sub"]), scopes=self._scopes(claims), method="jwt")

    async def _key(self, header: dict[str, Any]) -> Any:
        kid = header.get("kid")
        if self._client is not None:
            # PyJWKClient fetches with urllib (blocking): keep it off the event loop.
            token_key = await asyncio.to_thread(self._client.get_signing_key, str(kid))
            return token_key.key
        assert self._keys is not None
        for candidate in self._keys.keys:
            if kid is None or candidate.key_id == kid:
                return candidate.key
        raise Unauthenticated(f"token key id {kid!r} is not in the configured JWKS")

    def _scopes(self, claims: dict[str, Any]) -> frozenset[str]:
        value = claims.get(self._settings.scope_claim, "")
        if isinstance(value, str):
            return frozenset(value.split())
        if isinstance(value, list):
            return frozenset(str(v) for v in value)
        return frozenset()
