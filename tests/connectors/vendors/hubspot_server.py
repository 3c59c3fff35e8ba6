"""A HubSpot CRM v3 contract server: the documented requests checked, answered like HubSpot.

It keeps contacts by email and list memberships, accepts a private-app token or OAuth
access tokens it issued from the refresh token, and answers as documented: 200 / 207
Multi-Status for batch upserts (per-input errors carry the input's `objectWriteTraceId`),
a whole-batch 400 VALIDATION_ERROR for an invalid email (as HubSpot does for invalid
property values), 401 `EXPIRED_AUTHENTICATION` for an expired token.
"""

from __future__ import annotations

import itertools
from typing import Any

from aiohttp import web

from tests.connectors.vendors.recording_server import ContractServer, reply

KNOWN_PROPERTIES = {"email", "firstname", "lastname", "phone", "company", "jobtitle", "country"}
CLIENT_ID = "client-id-1"
CLIENT_SECRET = "client-secret-1"
REFRESH_TOKEN = "refresh-token-1"


def error(message: str, category: str = "VALIDATION_ERROR", **extra: Any) -> dict[str, Any]:
    return {
        "status": "error",
        "message": message,
        "category": category,
        "correlationId": "4c1f5e0e-0000-0000-0000-000000000000",
        **extra,
    }


class FakeHubSpot(ContractServer):
    """HubSpot as its documentation describes it, for one account."""

    def __init__(self, private_token: str = "pat-na1-test") -> None:
        super().__init__()
        self.private_token = private_token
        self.valid_tokens: set[str] = {private_token}
        self.expired_tokens: set[str] = set()
        self.contacts: dict[str, dict[str, Any]] = {}
        self.lists: dict[str, set[str]] = {"7": set()}
        self.erased: list[str] = []
        self._ids = itertools.count(101)
        self._tokens = itertools.count(1)
        r = self.app.router
        r.add_post("/crm/v3/objects/contacts/batch/upsert", self._upsert)
        r.add_post("/crm/v3/objects/contacts/batch/read", self._read)
        r.add_put("/crm/v3/lists/{list_id}/memberships/add", self._add)
        r.add_post("/crm/v3/objects/contacts/gdpr-delete", self._gdpr_delete)
        r.add_get("/crm/v3/objects/contacts", self._list_contacts)
        r.add_post("/oauth/v1/token", self._token)

    def scriptable(self, request: web.Request) -> bool:
        return request.path != "/oauth/v1/token"

    def expire_all_tokens(self) -> None:
        """Every access token issued so far expires (the private-app token does not)."""
        self.expired_tokens |= self.valid_tokens - {self.private_token}
        self.valid_tokens = {self.private_token}

    def _auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ")
        if not header.startswith("Bearer ") or token not in self.valid_tokens:
            if token in self.expired_tokens:
                return reply(
                    401,
                    error(
                        "The OAuth token used to make this call expired 1 minute(s) ago.",
                        "EXPIRED_AUTHENTICATION",
                    ),
                )
            return reply(
                401, error("Authentication credentials not found.", "INVALID_AUTHENTICATION")
            )
        if request.method in ("POST", "PUT") and request.content_type != "application/json":
            return reply(415, error("Content-Type must be application/json"))
        return None

    async def _token(self, request: web.Request) -> web.Response:
        if request.content_type != "application/x-www-form-urlencoded":
            return reply(400, error("form encoding required"))
        form = await request.post()
        expected = {
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "refresh_token": REFRESH_TOKEN,
        }
        if {k: form.get(k) for k in expected} != expected:
            return reply(400, error("missing or unknown refresh token", "BAD_REFRESH_TOKEN"))
        token = f"oauth-access-{next(self._tokens)}"
        self.valid_tokens.add(token)
        return reply(
            200,
            {
                "token_type": "bearer",
                "refresh_token": REFRESH_TOKEN,
                "access_token": token,
                "expires_in": 1800,
            },
        )

    async def _upsert(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        body = await request.json()
        inputs = body.get("inputs")
        if set(body) != {"inputs"} or not isinstance(inputs, list) or not inputs:
            return reply(400, error("Invalid input JSON: 'inputs' is required"))
        if len(inputs) > 100:
            return reply(400, error("Batch input must contain at most 100 inputs"))
        emails = [str(i.get("id", "")).lower() for i in inputs]
        if len(set(emails)) != len(emails):
            return reply(400, error("Duplicate IDs found in batch input"))
        bad = [i["id"] for i in inputs if "@" not in str(i.get("properties", {}).get("email", "@"))]
        if bad:
            return reply(
                400,
                error(
                    "Property values were not valid",
                    errors=[
                        {"message": f"Email address {b} is invalid", "in": "email"} for b in bad
                    ],
                ),
            )
        results, errors = [], []
        for item in inputs:
            if set(item) != {"idProperty", "id", "properties", "objectWriteTraceId"}:
                return reply(400, error(f"unexpected input fields {sorted(item)}"))
            if item["idProperty"] != "email":
                return reply(400, error("idProperty must be email for this test account"))
            trace = item["objectWriteTraceId"]
            unknown = sorted(set(item["properties"]) - KNOWN_PROPERTIES)
            if unknown:
                errors.append(
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": f'Property "{unknown[0]}" does not exist',
                        "context": {"objectWriteTraceId": [trace]},
                    }
                )
                continue
            email = item["id"].lower()
            record = self.contacts.get(email)
            new = record is None
            if record is None:
                record = {"id": str(next(self._ids)), "properties": {}}
                self.contacts[email] = record
            record["properties"].update(item["properties"])
            results.append(
                {
                    "id": record["id"],
                    "new": new,
                    "properties": {"email": email, **record["properties"]},
                    "objectWriteTraceId": trace,
                    "archived": False,
                }
            )
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if errors:
            answer |= {"errors": errors, "numErrors": len(errors)}
        return reply(207 if errors else 200, answer)

    async def _read(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        body = await request.json()
        if body.get("idProperty") != "email" or not isinstance(body.get("inputs"), list):
            return reply(400, error("idProperty email and inputs are required"))
        results, missing = [], []
        for item in body["inputs"]:
            record = self.contacts.get(str(item["id"]).lower())
            if record is None:
                missing.append(item["id"])
            else:
                results.append({"id": record["id"], "properties": {"email": item["id"].lower()}})
        answer: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if missing:
            answer["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not get some CONTACT objects",
                    "context": {"ids": missing},
                }
            ]
        return reply(207 if missing else 200, answer)

    async def _add(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        members = self.lists.get(request.match_info["list_id"])
        if members is None:
            return reply(404, error("List does not exist", "OBJECT_NOT_FOUND"))
        ids = await request.json()
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return reply(400, error("body must be an array of record ids"))
        known = {c["id"] for c in self.contacts.values()}
        added = [i for i in ids if i in known and i not in members]
        members.update(added)
        missing = [i for i in ids if i not in known]
        return reply(
            200, {"recordsIdsAdded": added, "recordIdsMissing": missing, "recordIdsRemoved": []}
        )

    async def _gdpr_delete(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        body = await request.json()
        # By email with idProperty "email", or by record id with objectId alone.
        if "objectId" not in body or set(body) - {"objectId", "idProperty"}:
            return reply(400, error("objectId is required"))
        if body.get("idProperty", "email") != "email":
            return reply(400, error("idProperty must be email in this test account"))
        if "idProperty" in body:
            email = str(body["objectId"]).lower()
        else:
            by_id = {c["id"]: e for e, c in self.contacts.items()}
            email = by_id.get(str(body["objectId"]), "")
            if not email:
                return reply(404, error("Object not found", "OBJECT_NOT_FOUND"))
        self.contacts.pop(email, None)
        self.erased.append(email)
        return reply(204)

    async def _list_contacts(self, request: web.Request) -> web.Response:
        if (refused := self._auth(request)) is not None:
            return refused
        return reply(200, {"results": []})
