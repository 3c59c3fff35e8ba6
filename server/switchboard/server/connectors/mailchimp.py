"""Mailchimp Marketing API 3.0: audience members by subscriber hash, tags, permanent delete.

Endpoints (Mailchimp Marketing API reference, https://mailchimp.com/developer/marketing/api/):

- one member: `PUT /3.0/lists/{list_id}/members/{subscriber_hash}` ("Add or update list
  member"), where the hash is the MD5 of the lower-cased email, with `email_address`,
  `status_if_new` and `status` (`subscribed`, `pending` for double opt-in, `unsubscribed`)
  and `merge_fields`; tags through `POST …/members/{subscriber_hash}/tags` with
  `{"tags": [{"name", "status": "active"}]}` (204).
- many members: `POST /3.0/lists/{list_id}` ("Batch subscribe or unsubscribe"), up to 500
  `members` a call with `update_existing: true`; it answers at once with `new_members`,
  `updated_members` and `errors` (`email_address`, `error`, `error_code`), which map back to
  each step by email. It is used rather than the batch operations endpoint (`POST
  /3.0/batches`), which is asynchronous: its per-operation results arrive later as a
  tar.gz archive to poll for and download, which does not fit a call that must say how
  each step ended (the release note "Added ability to sync tags to existing members",
  https://mailchimp.com/developer/release-notes/added-ability-sync-tags-existing-members/,
  covers tags on this endpoint).
- `contacts.erase`: `POST /3.0/lists/{list_id}/members/{subscriber_hash}/actions/delete-permanent`
  (204): the member and its history are deleted from that audience for good, and the address
  cannot be imported again. Batches of erasures run member by member, at most 10 at once.
  Without an email, the member id kept in `external_ids` stands in for the hash (the
  reference accepts a member's contact id there).
- `health`: `GET /3.0/ping`.

Auth: HTTP Basic with any user name and the API key as password; the key ends in its data
centre (`…-us21`), which names the host `https://us21.api.mailchimp.com` ("Marketing API
quick start", https://mailchimp.com/developer/marketing/guides/quick-start/).

Limits ("API fundamentals", https://mailchimp.com/developer/marketing/docs/fundamentals/):
10 simultaneous connections per API key, and no published request rate. The connection pool
holds 10 connections and the default `max_concurrency` is 10.

Errors are problem details (`type`, `title`, `status`, `detail`, `instance`, `errors[]` with
`field` / `message`; "Errors", https://mailchimp.com/developer/marketing/docs/errors/):
429 and 5xx are retryable, other 4xx permanent with Mailchimp's title and detail.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from switchboard.server.connectors.base import (
    BatchItem,
    ConnectorState,
    InvokeContext,
    ItemOutcome,
    JsonDict,
    payload_contact,
    reject_unknown_options,
    require,
    require_action,
)
from switchboard.server.connectors.http_errors import error_for_status
from switchboard.server.connectors.vendor_http import (
    VendorHttp,
    VendorResponse,
    base_url_option,
    map_fields,
    option_secret,
    parse_mapping,
)
from switchboard.server.connectors.vendor_limits import DefaultLimits
from switchboard.server.errors import (
    ConnectorError,
    PermanentConnectorError,
    RetryableConnectorError,
)

_OPTIONS = frozenset(
    {
        "api_key",
        "base_url",
        "list_id",
        "merge_fields",
        "double_opt_in",
        "tags",
        "purposes",
        "external_id_key",
    }
)
#: Mailchimp merge tag -> Switchboard contact path (the audience's default merge fields).
DEFAULT_MERGE_FIELDS: Mapping[str, str] = {
    "FNAME": "first_name",
    "LNAME": "last_name",
    "PHONE": "phone",
}
MAX_BATCH_MEMBERS = 500
MAX_CONNECTIONS = 10
_LIST_ACTIONS = frozenset({"lists.subscribe", "lists.unsubscribe"})


def subscriber_hash(email: str) -> str:
    """Mailchimp's member id: the MD5 hex digest of the lower-cased email."""
    return hashlib.md5(email.lower().encode(), usedforsecurity=False).hexdigest()


class MailchimpConnector:
    """Mailchimp audience members.

    Options:
        api_key: the API key (`env:NAME` / `file:PATH`); its `-usNN` suffix names the host.
        base_url: default `https://<dc>.api.mailchimp.com` from the key.
        list_id: the audience used when a step's params give no `list_id`.
        merge_fields: `{MERGE_TAG: contact_path}`, default `DEFAULT_MERGE_FIELDS`.
        double_opt_in: subscribe as `pending` (Mailchimp sends the confirmation email).
        tags: tag names added on every subscribe (a step's `params.tags` adds more).
        purposes: consent purposes served (default `["email_marketing"]`).
        external_id_key: where the contact keeps its Mailchimp member id in `external_ids`
            (default: the connector's name); erasure uses it when the email is absent.
    """

    kind: str = "mailchimp"
    actions: frozenset[str] = _LIST_ACTIONS | {"contacts.erase"}
    default_limits = DefaultLimits(max_concurrency=MAX_CONNECTIONS)

    def __init__(self, name: str, options: Mapping[str, Any], state: ConnectorState) -> None:
        reject_unknown_options(name, self.kind, options, _OPTIONS)
        self.name = name
        key = option_secret(name, options, "api_key")
        datacenter = key.rsplit("-", 1)[1] if "-" in key else ""
        if not datacenter and "base_url" not in options:
            raise ValueError(
                f"connector {name!r}: the Mailchimp API key has no data-centre suffix "
                "(like -us21); set option base_url"
            )
        self._base = base_url_option(name, options, f"https://{datacenter}.api.mailchimp.com")
        credentials = base64.b64encode(f"switchboard:{key}".encode()).decode()
        self._headers = {"authorization": f"Basic {credentials}", "accept": "application/json"}
        self._http = VendorHttp(f"Mailchimp ({name!r})", max_connections=MAX_CONNECTIONS)
        self._list_id = str(options.get("list_id", "")) or None
        self._merge_fields = parse_mapping(name, options, "merge_fields", DEFAULT_MERGE_FIELDS)
        self._double_opt_in = bool(options.get("double_opt_in", False))
        self._tags = _names(name, "tags", options.get("tags", []))
        self.purposes: frozenset[str] = frozenset(
            _names(name, "purposes", options.get("purposes", ["email_marketing"]))
        )
        self._erasing = asyncio.Semaphore(MAX_CONNECTIONS)
        self._external_key = str(options.get("external_id_key") or name)

    @property
    def base_url(self) -> str:
        """The API host in use (from the key's data centre unless configured)."""
        return self._base

    def max_batch(self, action: str) -> int:
        """Subscriptions go 500 to a call; erasures are sent 10 at once."""
        return MAX_BATCH_MEMBERS if action in _LIST_ACTIONS else MAX_CONNECTIONS

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """Subscribe, unsubscribe or erase one member with the per-member endpoints."""
        require_action(self, action)
        limit_s = ctx.deadline_s
        if action == "contacts.erase":
            return await self._erase(payload, limit_s)
        list_id, member, tags = self._member(action, payload)
        path = f"/3.0/lists/{list_id}/members/{subscriber_hash(member['email_address'])}"
        body = {**member, "status_if_new": member["status"]}
        body.pop("tags", None)
        answer = (await self._call("PUT", path, body, limit_s)).json_dict()
        if tags:
            tag_body = {"tags": [{"name": tag, "status": "active"} for tag in tags]}
            await self._call("POST", f"{path}/tags", tag_body, limit_s)
        return _member_result(list_id, answer, created=None)

    async def invoke_batch(self, action: str, items: Sequence[BatchItem]) -> list[ItemOutcome]:
        """Many members: one batch call per audience and 500 members; erasures 10 at once."""
        require_action(self, action)
        if action == "contacts.erase":
            return list(await asyncio.gather(*(self._erase_item(item) for item in items)))
        outcomes: list[ItemOutcome] = [RetryableConnectorError("no outcome")] * len(items)
        by_list: dict[str, list[tuple[int, JsonDict]]] = {}
        for i, item in enumerate(items):
            try:
                list_id, member, _ = self._member(action, item.payload)
            except PermanentConnectorError as exc:
                outcomes[i] = exc
                continue
            by_list.setdefault(list_id, []).append((i, member))
        limit_s = _limit(items)
        for list_id, members in by_list.items():
            for start in range(0, len(members), MAX_BATCH_MEMBERS):
                chunk = members[start : start + MAX_BATCH_MEMBERS]
                try:
                    results = await self._batch_members(list_id, [m for _, m in chunk], limit_s)
                except PermanentConnectorError as exc:
                    # Throttling and outages (retryable) concern the whole call and
                    # propagate; a refusal of one audience fails only its own members.
                    results = [exc] * len(chunk)
                for (i, _), outcome in zip(chunk, results, strict=True):
                    outcomes[i] = outcome
        return outcomes

    async def health(self) -> None:
        """`GET /3.0/ping` must answer 2xx with these credentials."""
        await self._call("GET", "/3.0/ping", None, 5.0)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def _member(self, action: str, payload: JsonDict) -> tuple[str, JsonDict, list[str]]:
        contact, _ = payload_contact(payload)
        email: str = require(contact, "email")
        params = payload.get("params") or {}
        if not isinstance(params, dict):
            raise PermanentConnectorError("payload field 'params' must be a dict")
        list_id = params.get("list_id") or self._list_id
        if not list_id:
            raise PermanentConnectorError(
                f"connector {self.name!r}: {action} needs params.list_id (or option list_id)"
            )
        if action == "lists.unsubscribe":
            return str(list_id), {"email_address": email, "status": "unsubscribed"}, []
        status = "pending" if params.get("double_opt_in", self._double_opt_in) else "subscribed"
        member: JsonDict = {"email_address": email, "status": status}
        if merge := map_fields(contact, self._merge_fields):
            member["merge_fields"] = merge
        extra = params.get("tags") or []
        if not isinstance(extra, list) or not all(isinstance(t, str) for t in extra):
            raise PermanentConnectorError("params.tags must be a list of tag names")
        tags = list(dict.fromkeys([*self._tags, *extra]))
        if tags:
            member["tags"] = tags
        return str(list_id), member, tags

    async def _batch_members(
        self, list_id: str, members: list[JsonDict], limit_s: float | None
    ) -> list[ItemOutcome]:
        body = {"members": members, "update_existing": True}
        answer = (await self._call("POST", f"/3.0/lists/{list_id}", body, limit_s)).json_dict()
        done: dict[str, ItemOutcome] = {}
        for key, created in (("new_members", True), ("updated_members", False)):
            for member in answer.get(key) or []:
                email = str(member.get("email_address", "")).lower()
                done[email] = _member_result(list_id, member, created)
        for error in answer.get("errors") or []:
            email = str(error.get("email_address", "")).lower()
            code = error.get("error_code")
            done[email] = PermanentConnectorError(
                f"Mailchimp refused {email}: {error.get('error', 'rejected')}"
                + (f" ({code})" if code else "")
            )
        return [
            done.get(
                str(m["email_address"]).lower(),
                RetryableConnectorError("Mailchimp answered no result for this member"),
            )
            for m in members
        ]

    async def _erase_item(self, item: BatchItem) -> ItemOutcome:
        async with self._erasing:
            try:
                return await self._erase(item.payload, item.ctx.deadline_s)
            except ConnectorError as exc:
                return exc

    async def _erase(self, payload: JsonDict, limit_s: float | None) -> JsonDict:
        contact, _ = payload_contact(payload)
        email = contact.get("email")
        # Mailchimp takes the member's contact id in place of the hash, so an erasure run
        # that carries no email can still name the member by the id written back earlier.
        member = (
            subscriber_hash(email)
            if isinstance(email, str) and email
            else str((contact.get("external_ids") or {}).get(self._external_key) or "")
        )
        if not member:
            raise PermanentConnectorError(
                f"contacts.erase needs the contact's email or its Mailchimp id "
                f"(external_ids.{self._external_key})"
            )
        params = payload.get("params") or {}
        list_id = (params.get("list_id") if isinstance(params, dict) else None) or self._list_id
        if not list_id:
            raise PermanentConnectorError(
                f"connector {self.name!r}: contacts.erase needs params.list_id (or option list_id)"
            )
        path = f"/3.0/lists/{list_id}/members/{member}/actions/delete-permanent"
        response = await self._call("POST", path, None, limit_s, allow=frozenset({404}))
        return {"list_id": str(list_id), "erased": response.status != 404}

    async def _call(
        self,
        method: str,
        path: str,
        body: Any,
        limit_s: float | None,
        allow: frozenset[int] = frozenset(),
    ) -> VendorResponse:
        response = await self._http.request(
            method, self._base + path, headers=self._headers, json_body=body, timeout_s=limit_s
        )
        if 200 <= response.status < 300 or response.status in allow:
            return response
        what = f"Mailchimp ({self.name!r})"
        message = problem_message(response.json_dict()) or response.text[:200]
        if response.status in (401, 403):
            raise PermanentConnectorError(
                f"{what} refused the API key (HTTP {response.status}): {message}"
            )
        raise error_for_status(response.status, response.headers, what, message)


def problem_message(body: Mapping[str, Any]) -> str:
    """Mailchimp's `title: detail`, with the field errors it lists."""
    title, detail = str(body.get("title") or ""), str(body.get("detail") or "")
    message = f"{title}: {detail}" if title and detail else title or detail
    fields = [
        f"{e.get('field')}: {e.get('message')}" if e.get("field") else str(e.get("message"))
        for e in body.get("errors") or []
        if isinstance(e, dict)
    ]
    if fields:
        message = f"{message} ({'; '.join(fields)})"
    return message[:500]


def _member_result(list_id: str, member: Mapping[str, Any], created: bool | None) -> JsonDict:
    result: JsonDict = {
        "list_id": list_id,
        "subscriber_hash": str(member.get("id", "")),
        "status": str(member.get("status", "")),
    }
    if created is not None:
        result["created"] = created
    return result


def _names(name: str, option: str, value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"connector {name!r}: option {option!r} must be a list of names")
    return list(value)


def _limit(items: Sequence[BatchItem]) -> float | None:
    deadlines = [i.ctx.deadline_s for i in items if i.ctx.deadline_s is not None]
    return min(deadlines) if deadlines else None
