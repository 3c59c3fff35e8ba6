"""OAuth 2.0 access tokens for the `http` connector: client credentials and refresh token.

RFC 6749 §4.4 (client credentials) and §6 (refreshing an access token): a form POST to the
token endpoint, client authentication by HTTP Basic (§2.3.1, the default) or in the body
(`client_auth = "body"`). The token is cached until shortly before `expires_in` runs out;
concurrent calls wait for one fetch. A 401 from the API invalidates the token the request
carried, and the connector fetches a new one once (see `connector.py`).

A provider may rotate the refresh token (issue a new one with each refresh, the old one
dying). The newest one is kept in the connector's state, keyed by a digest of the
configured token, so a restart continues with it, and configuring a new token starts over.

Why not Authlib's httpx client: it would own the HTTP client, its renewal is by expiry
only, and the one-refresh-on-401, the rotation record and the translation of token-endpoint
errors into retryable / permanent would still be ours. The flow itself is two form fields.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from switchboard.server.connectors.base import ConnectorState
from switchboard.server.connectors.http_call import send
from switchboard.server.connectors.http_errors import is_retryable_status, parse_retry_after
from switchboard.server.connectors.secret_option import resolve_reference
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError

if TYPE_CHECKING:
    import httpx

GRANTS = ("client_credentials", "refresh_token")
_KEYS = frozenset(
    {
        "type",
        "token_url",
        "client_id",
        "client_secret",
        "refresh_token",
        "scope",
        "audience",
        "client_auth",
    }
)
#: Renew this long before the stated expiry, so a token does not die in flight.
EXPIRY_MARGIN_S = 30.0
_ROTATED = ("oauth", "refresh_token")


class TokenSource:
    """Fetches and caches access tokens for one connector."""

    def __init__(self, where: str, spec: Mapping[str, Any], state: ConnectorState) -> None:
        """Check the `auth` table; `where` names it in errors.

        Raises:
            ValueError: a missing or unknown key, or an unresolvable secret reference.
        """
        if unknown := sorted(set(spec) - _KEYS):
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}")
        self.grant = str(spec["type"]).removeprefix("oauth2_")
        token_url = spec.get("token_url")
        if not isinstance(token_url, str) or not token_url.startswith(("http://", "https://")):
            raise ValueError(f"{where}.token_url must be an http(s) URL")
        client_id = spec.get("client_id")
        if not isinstance(client_id, str) or not client_id:
            raise ValueError(f"{where}.client_id is required")
        self._url = token_url
        self._client_id = client_id
        secret = spec.get("client_secret")
        self._secret = resolve_reference(f"{where}.client_secret", secret) if secret else ""
        if self.grant == "client_credentials" and not self._secret:
            raise ValueError(f"{where}.client_secret is required for client credentials")
        self._refresh = ""
        if self.grant == "refresh_token":
            ref = spec.get("refresh_token")
            if not isinstance(ref, str):
                raise ValueError(f"{where}.refresh_token is required (env:NAME or file:PATH)")
            self._refresh = resolve_reference(f"{where}.refresh_token", ref)
        self._configured = hashlib.sha256(self._refresh.encode()).hexdigest()
        self._client_auth = str(spec.get("client_auth", "basic"))
        if self._client_auth not in ("basic", "body"):
            raise ValueError(f'{where}.client_auth must be "basic" or "body"')
        self._extra = {k: str(spec[k]) for k in ("scope", "audience") if spec.get(k)}
        self._state = state
        self._token = ""
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self._loaded = False
        self.fetches = 0

    async def token(self, client: httpx.AsyncClient, what: str) -> str:
        """A valid access token, fetched when none is cached or it is about to expire."""
        async with self._lock:
            if self._token and time.monotonic() < self._expires_at:
                return self._token
            await self._fetch(client, what)
            return self._token

    def invalidate(self, token: str) -> None:
        """Forget `token` (the API refused it); the next `token()` fetches a new one."""
        if token == self._token:
            self._token = ""

    async def _fetch(self, client: httpx.AsyncClient, what: str) -> None:
        form = {"grant_type": self.grant, **self._extra}
        if self.grant == "refresh_token":
            form["refresh_token"] = await self._current_refresh_token()
        headers = {
            "content-type": "application/x-www-form-urlencoded",
            "accept": "application/json",
        }
        if self._client_auth == "basic" and self._secret:
            pair = f"{_form(self._client_id)}:{_form(self._secret)}"
            headers["authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form["client_id"] = self._client_id
            if self._secret:
                form["client_secret"] = self._secret
        request = client.build_request("POST", self._url, data=form, headers=headers)
        answer = await send(client, request, f"{what} token endpoint")
        document = answer.json()
        if not answer.ok or not isinstance(document, dict) or not document.get("access_token"):
            raise _token_error(what, answer.status, answer.headers, document)
        self.fetches += 1
        self._token = str(document["access_token"])
        expires_in = document.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else float("inf")
        self._expires_at = time.monotonic() + max(0.0, lifetime - EXPIRY_MARGIN_S)
        rotated = document.get("refresh_token")
        if self.grant == "refresh_token" and isinstance(rotated, str) and rotated != self._refresh:
            self._refresh = rotated
            await self._state.put(*_ROTATED, {"configured": self._configured, "token": rotated})

    async def _current_refresh_token(self) -> str:
        if not self._loaded:
            self._loaded = True
            kept = await self._state.get(*_ROTATED)
            if kept and kept.get("configured") == self._configured:
                self._refresh = str(kept["token"])
        return self._refresh


def _form(value: str) -> str:
    # RFC 6749 §2.3.1: id and secret are form-encoded before Basic encoding.
    return urllib.parse.quote_plus(value)


def _token_error(
    what: str, status: int, headers: Mapping[str, str], document: Any
) -> RetryableConnectorError | PermanentConnectorError:
    code = document.get("error", "") if isinstance(document, dict) else ""
    text = document.get("error_description", "") if isinstance(document, dict) else ""
    message = f"{what} token endpoint answered HTTP {status}" + (
        f": {code}" + (f" ({text})" if text else "") if code else ""
    )
    if is_retryable_status(status):
        return RetryableConnectorError(message, parse_retry_after(headers.get("retry-after")))
    # invalid_client, invalid_grant, unauthorized_client...: no retry can help.
    return PermanentConnectorError(message)
