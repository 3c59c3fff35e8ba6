"""A Mailchimp Marketing API contract server: members by subscriber hash, batch subscribe.

Checks HTTP Basic auth with the API key as password, the subscriber hash (MD5 of the
lower-cased email) in the path, the member body fields, and answers with Mailchimp's
problem-detail errors. It also counts connections in flight, to check the limit of 10.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any

from aiohttp import web

from tests.connectors.vendors.recording_server import ContractServer, reply

API_KEY = "0123456789abcdef0123456789abcdef-us21"
STATUSES = {"subscribed", "unsubscribed", "cleaned", "pending", "transactional"}


def problem(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "https://mailchimp.com/developer/marketing/docs/errors/",
        "title": title,
        "status": status,
        "detail": detail,
        "instance": "995c5cb0-3280-4a6e-808b-3b096d0bb219",
        **extra,
    }


def md5(email: str) -> str:
    return hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()


class FakeMailchimp(ContractServer):
    """One Mailchimp account with one audience, `list1`."""

    def __init__(self, api_key: str = API_KEY, delay_s: float = 0.0) -> None:
        super().__init__()
        self.api_key = api_key
        self.delay_s = delay_s
        self.members: dict[str, dict[str, dict[str, Any]]] = {"list1": {}}
        self.deleted: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        r = self.app.router
        r.add_put("/3.0/lists/{list_id}/members/{hash}", self._put_member)
        r.add_post("/3.0/lists/{list_id}/members/{hash}/tags", self._tags)
        r.add_post("/3.0/lists/{list_id}/members/{hash}/actions/delete-permanent", self._delete)
        r.add_post("/3.0/lists/{list_id}", self._batch)
        r.add_get("/3.0/ping", self._ping)

    def _auth(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        try:
            _, password = base64.b64decode(header.removeprefix("Basic ")).decode().split(":", 1)
        except ValueError:
            password = ""
        if not header.startswith("Basic ") or password != self.api_key:
            return reply(
                401,
                problem(
                    401,
                    "API Key Invalid",
                    "Your API key may be invalid, or you've attempted to access the wrong "
                    "datacenter.",
                ),
            )
        return None

    async def _enter(self, request: web.Request) -> web.Response | None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        if (refused := self._auth(request)) is not None:
            return refused
        if request.match_info.get("list_id", "list1") not in self.members:
            return reply(
                404,
                problem(404, "Resource Not Found", "The requested resource could not be found."),
            )
        return None

    def _member(self, list_id: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        email = body["email_address"]
        members = self.members[list_id]
        existing = members.get(md5(email))
        member = existing or {
            "id": md5(email),
            "email_address": email,
            "merge_fields": {},
            "tags": [],
        }
        member["status"] = body.get("status") or (
            body.get("status_if_new") if existing is None else member["status"]
        )
        member["merge_fields"].update(body.get("merge_fields") or {})
        for tag in body.get("tags") or []:
            if tag not in member["tags"]:
                member["tags"].append(tag)
        members[member["id"]] = member
        return member, existing is None

    def _invalid(self, body: dict[str, Any]) -> str | None:
        email = body.get("email_address")
        if not isinstance(email, str) or "@" not in email:
            return f"{email} looks fake or invalid, please enter a real email address."
        if body.get("status") not in STATUSES:
            return "status must be one of " + ", ".join(sorted(STATUSES))
        merge = body.get("merge_fields") or {}
        if any(not k.isupper() for k in merge):
            return "Your merge fields were invalid."
        return None

    async def _put_member(self, request: web.Request) -> web.Response:
        if (refused := await self._enter(request)) is not None:
            return refused
        body = await request.json()
        if set(body) - {"email_address", "status_if_new", "status", "merge_fields"}:
            return reply(400, problem(400, "Invalid Resource", f"unexpected fields {sorted(body)}"))
        if body.get("status_if_new") not in STATUSES:
            return reply(400, problem(400, "Invalid Resource", "status_if_new is required"))
        if (invalid := self._invalid(body)) is not None:
            return reply(400, problem(400, "Invalid Resource", invalid))
        if md5(body["email_address"]) != request.match_info["hash"]:
            return reply(
                400,
                problem(400, "Invalid Resource", "The subscriber hash does not match the email"),
            )
        member, _ = self._member(request.match_info["list_id"], body)
        return reply(200, member)

    async def _tags(self, request: web.Request) -> web.Response:
        if (refused := await self._enter(request)) is not None:
            return refused
        member = self.members[request.match_info["list_id"]].get(request.match_info["hash"])
        if member is None:
            return reply(
                404,
                problem(404, "Resource Not Found", "The requested resource could not be found."),
            )
        body = await request.json()
        for tag in body["tags"]:
            assert set(tag) == {"name", "status"}
            assert tag["status"] == "active"
            if tag["name"] not in member["tags"]:
                member["tags"].append(tag["name"])
        return reply(204)

    async def _delete(self, request: web.Request) -> web.Response:
        if (refused := await self._enter(request)) is not None:
            return refused
        if await request.read():
            return reply(400, problem(400, "Invalid Resource", "this action takes no body"))
        member = self.members[request.match_info["list_id"]].pop(request.match_info["hash"], None)
        if member is None:
            return reply(
                404,
                problem(404, "Resource Not Found", "The requested resource could not be found."),
            )
        self.deleted.append(member["email_address"])
        return reply(204)

    async def _batch(self, request: web.Request) -> web.Response:
        if (refused := await self._enter(request)) is not None:
            return refused
        body = await request.json()
        members = body.get("members")
        if (
            not isinstance(members, list)
            or len(members) > 500
            or body.get("update_existing") is not True
        ):
            return reply(
                400,
                problem(
                    400,
                    "Invalid Resource",
                    "members (at most 500) and update_existing are required",
                ),
            )
        new: list[dict[str, Any]] = []
        updated: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for raw in members:
            if (invalid := self._invalid(raw)) is not None:
                errors.append(
                    {
                        "email_address": raw.get("email_address"),
                        "error": invalid,
                        "error_code": "ERROR_GENERIC",
                    }
                )
                continue
            member, created = self._member(request.match_info["list_id"], raw)
            (new if created else updated).append(member)
        return reply(
            200,
            {
                "new_members": new,
                "updated_members": updated,
                "errors": errors,
                "total_created": len(new),
                "total_updated": len(updated),
                "error_count": len(errors),
            },
        )

    async def _ping(self, request: web.Request) -> web.Response:
        if (refused := await self._enter(request)) is not None:
            return refused
        return reply(200, {"health_status": "Everything's Chimpy!"})
