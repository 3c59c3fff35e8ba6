"""HubSpot credentials: a private-app token, or an OAuth 2 refresh token.

Both are sent as `Authorization: Bearer <token>` (HubSpot, "Authentication overview":
https://developers.hubspot.com/docs/apps/legacy-apps/authentication/intro-to-auth).

OAuth access tokens are short lived (30 minutes; the token answer's `expires_in` is the
truth). `OAuthToken` gets one from the refresh token at `POST /oauth/v1/token`
(`application/x-www-form-urlencoded`: `grant_type=refresh_token`, `client_id`,
`client_secret`, `refresh_token`; "Refresh an access token",
https://developers.hubspot.com/docs/api-reference/legacy/authentication/oauth-tokens/v1/refresh-oauth-token),
caches it until shortly before it expires, and refreshes it once more when a call answers
401 with it (`invalidate`). Concurrent callers share one refresh (a lock). HubSpot notes
that a 401 alone is no reliable sign of expiry ("API usage guidelines"), hence the expiry
clock first and the 401 refresh as the fallback, at most once per call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol

from switchboard.server.connectors.vendor_http import VendorHttp
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError

#: Refresh this long before the announced expiry, so a token never expires in flight.
_EARLY_S = 60.0


class TokenSource(Protocol):
    """Where the bearer token comes from."""

    refreshable: bool

    async def token(self) -> str:
        """The bearer token to send now."""
        ...

    def invalidate(self, token: str) -> None:
        """Forget `token` (it was refused), so the next `token()` gets a new one."""
        ...


class StaticToken:
    """A private-app access token: it does not expire and cannot be refreshed."""

    refreshable = False

    def __init__(self, value: str) -> None:
        self._value = value

    async def token(self) -> str:
        """The configured token."""
        return self._value

    def invalidate(self, token: str) -> None:
        """Nothing to do: a refused private-app token stays refused."""


class OAuthToken:
    """Access tokens from an OAuth 2 refresh token, cached until they expire."""

    refreshable = True

    def __init__(
        self,
        http: VendorHttp,
        token_url: str,
        client_id: str,
        client_secret: str,
        refresh_token: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._token_url = token_url
        self._form = {
            "grant_type": "refresh_token",
            "client_id": client_id,
            "client_secret": client_secret,
            "refresh_token": refresh_token,
        }
        self._clock = clock
        self._access: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.refreshes = 0

    async def token(self) -> str:
        """A valid access token, refreshed first when none is cached or it is about to expire."""
        async with self._lock:
            if self._access is None or self._clock() >= self._expires_at:
                await self._refresh()
            assert self._access is not None
            return self._access

    def invalidate(self, token: str) -> None:
        """Drop the cached token if it is still `token` (another call may have refreshed)."""
        if self._access == token:
            self._access = None

    async def _refresh(self) -> None:
        response = await self._http.request(
            "POST",
            self._token_url,
            headers={"accept": "application/json"},
            form=self._form,
            timeout_s=10.0,
        )
        body = response.json_dict()
        if response.status >= 500 or response.status == 429:
            raise RetryableConnectorError(f"HubSpot token refresh answered HTTP {response.status}")
        if response.status != 200:
            # Never echo the form: it holds the client secret and the refresh token.
            detail = str(body.get("message") or body.get("error_description") or "")[:200]
            raise PermanentConnectorError(
                f"HubSpot token refresh refused (HTTP {response.status})"
                + (f": {detail}" if detail else "")
            )
        access = body.get("access_token") or body.get("accessToken")
        expires_in = body.get("expires_in", body.get("expiresIn", 1800))
        if not isinstance(access, str) or not access:
            raise RetryableConnectorError("HubSpot token refresh answered without an access token")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 1800.0
        self._access = access
        self._expires_at = self._clock() + max(0.0, lifetime - _EARLY_S)
        self.refreshes += 1
