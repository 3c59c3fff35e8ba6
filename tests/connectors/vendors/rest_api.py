"""A small REST tool behind OAuth 2 (RFC 6749), for the declarative `http` connector.

`POST /oauth/token` takes client credentials (HTTP Basic client authentication) or a
refresh token (rotated on every use); `PUT /v1/people/{id}` and `POST /v1/people/batch`
need a current bearer token (401 `invalid_token` otherwise, as RFC 6750 §3.1 describes).
"""

from __future__ import annotations

import base64
import itertools
import urllib.parse
from typing import Any

from aiohttp import web

from tests.connectors.vendors.contract import ContractServer, Reply, Seen

CLIENT_ID = "sb-client"
CLIENT_SECRET = "sb-secret"
FIRST_REFRESH_TOKEN = "rt-0"


class RestTool:
    """State of the fake tool: valid tokens, the current refresh token, people."""

    def __init__(self, server: ContractServer) -> None:
        self.server = server
        self.valid_tokens: set[str] = set()
        self.refresh_token = FIRST_REFRESH_TOKEN
        self.people: dict[str, dict[str, Any]] = {}
        self._serial = itertools.count(1)
        server.route("POST", "/oauth/token", self._token)
        server.route("POST", "/v1/people/batch", self._batch)
        server.route("PUT", "/v1/people/", self._put)

    def revoke_all(self) -> None:
        """Every token issued so far now answers 401 (e.g. expired early)."""
        self.valid_tokens.clear()

    async def _token(self, seen: Seen) -> web.StreamResponse:
        if (
            seen.headers.get("content-type", "").split(";")[0]
            != "application/x-www-form-urlencoded"
        ):
            self.server.violation(seen, "token request must be form-encoded")
        form = dict(urllib.parse.parse_qsl(seen.body.decode()))
        basic = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if seen.headers.get("authorization") != basic:
            return Reply(401, {"error": "invalid_client"}).response()
        answer: dict[str, Any] = {"token_type": "Bearer", "expires_in": 3600}
        if form.get("grant_type") == "refresh_token":
            if form.get("refresh_token") != self.refresh_token:
                return Reply(
                    400, {"error": "invalid_grant", "error_description": "stale"}
                ).response()
            self.refresh_token = f"rt-{next(self._serial)}"
            answer["refresh_token"] = self.refresh_token
        elif form.get("grant_type") != "client_credentials":
            return Reply(400, {"error": "unsupported_grant_type"}).response()
        token = f"at-{next(self._serial)}"
        self.valid_tokens.add(token)
        return Reply(200, {"access_token": token, **answer}).response()

    def _authorized(self, seen: Seen) -> bool:
        header = seen.headers.get("authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.valid_tokens

    async def _put(self, seen: Seen) -> web.StreamResponse:
        if not self._authorized(seen):
            return _invalid_token()
        person_id = seen.path.removeprefix("/v1/people/")
        result = self._store(person_id, seen.json())
        return Reply(400 if "error" in result else 200, result).response()

    async def _batch(self, seen: Seen) -> web.StreamResponse:
        if not self._authorized(seen):
            return _invalid_token()
        inputs = seen.json().get("inputs")
        if not isinstance(inputs, list) or not 1 <= len(inputs) <= 100:
            self.server.violation(seen, "inputs must hold 1 to 100 people")
            return Reply(400, {"error": "bad inputs"}).response()
        return Reply(200, {"results": [self._store(p.get("id", ""), p) for p in inputs]}).response()

    def _store(self, person_id: str, person: dict[str, Any]) -> dict[str, Any]:
        if "@" not in str(person.get("email", "")):
            return {"error": f"invalid email {person.get('email')!r}"}
        self.people[person_id] = person
        return {"id": f"crm-{person_id}", "status": "upserted"}


def _invalid_token() -> web.StreamResponse:
    return Reply(
        401,
        {"error": "invalid_token"},
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    ).response()
