"""Segment HTTP Tracking API: `identify` and `track`, batched through `/v1/batch`.

Follows Segment's "HTTP API Source" documentation
(segment.com/docs/connections/sources/catalog/libraries/server/http-api):

- `POST {base_url}/identify`, `/track` and `/batch`; `base_url` defaults to
  `https://api.segment.io/v1` (EU workspaces: `https://events.eu1.segmentapis.com/v1`).
- Auth: HTTP Basic with the source's write key as the user name and an empty password
  (`Authorization: Basic base64("<write key>:")`); `Content-Type: application/json`.
- Size: at most 32 KB per identify/track request; `batch` takes at most 500 KB per request,
  32 KB per event and 2,500 events. Oversized events are refused here, before sending
  (Segment would answer 400 for the whole request).
- Rate: Segment asks for at most 1,000 requests/s per workspace and may answer 429 with
  `Retry-After`; that (and 5xx) is retryable. Segment answers 200 for everything except
  oversized payloads and invalid JSON (400, permanent).
- Deduplication is by `messageId` (under 100 characters): the step's idempotency key, so a
  retried step is counted once.

Mapping: `userId` is the contact's id (option `user_id`, a payload path); traits come from
the `traits` option (trait name → payload path, defaults below) plus the step's
`params.traits`; track's `event` is `params.event` (else the run's event) and its
`properties` the run's attributes plus `params.properties`.

Erasure: the Tracking API has no deletion call. Segment deletes and suppresses users
through its Public API ("regulations"), which this adapter does not call.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from switchboard.server.connectors.base import (
    BatchItem,
    ConnectorState,
    InvokeContext,
    ItemOutcome,
    JsonDict,
    reject_unknown_options,
    require_action,
)
from switchboard.server.connectors.http_call import compact_json, new_client, send
from switchboard.server.connectors.http_errors import error_for_status
from switchboard.server.connectors.payload_paths import lookup, path_map_option
from switchboard.server.connectors.secret_option import secret_option
from switchboard.server.errors import ConnectorError, PermanentConnectorError

if TYPE_CHECKING:
    import httpx

DEFAULT_BASE_URL = "https://api.segment.io/v1"
#: Documented limits of the HTTP Tracking API.
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_BATCH_EVENTS = 2500
_MESSAGE_ID_MAX = 99
_DEFAULT_TRAITS = {
    "email": "contact.email",
    "firstName": "contact.first_name",
    "lastName": "contact.last_name",
    "phone": "contact.phone",
    "title": "contact.job_title",
    "company.name": "contact.company",
    "address.country": "contact.country",
}
_ACTIONS = {"identify": "identify", "track": "track"}
_OPTIONS = frozenset({"write_key", "base_url", "user_id", "traits", "max_batch"})


class SegmentConnector:
    """Identify and track calls to one Segment source.

    Options:
        write_key: the source's write key, `env:NAME` or `file:PATH` (required).
        base_url: API root (default `https://api.segment.io/v1`).
        user_id: payload path of the `userId` (default `contact.id`).
        traits: trait name (dotted for nested, e.g. `company.name`) → payload path.
        max_batch: events per `/batch` request, at most 2,500 (default 2,500); bytes are
            split further at 500 KB.
    """

    kind: str = "segment"
    actions: frozenset[str] = frozenset(_ACTIONS)
    #: Segment routes events to analytics destinations; other uses need their own purpose.
    purposes: frozenset[str] = frozenset({"analytics"})

    def __init__(self, name: str, options: Mapping[str, Any], state: ConnectorState) -> None:
        reject_unknown_options(name, self.kind, options, _OPTIONS)
        self.name = name
        key = secret_option(name, options, "write_key")
        self._auth = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
        self._base = str(options.get("base_url", DEFAULT_BASE_URL)).rstrip("/")
        if not self._base.startswith(("http://", "https://")):
            raise ValueError(f"connector {name!r}: option 'base_url' must be an http(s) URL")
        self._user_id = str(options.get("user_id", "contact.id"))
        self._traits = path_map_option(name, options, "traits", _DEFAULT_TRAITS)
        self._max_batch = int(options.get("max_batch", MAX_BATCH_EVENTS))
        if not 1 <= self._max_batch <= MAX_BATCH_EVENTS:
            raise ValueError(
                f"connector {name!r}: option 'max_batch' must be 1..{MAX_BATCH_EVENTS}"
            )
        self._http: httpx.AsyncClient | None = None
        self._what = f"segment {name!r}"

    def max_batch(self, action: str) -> int:
        """Events one `/batch` request may carry (bytes permitting)."""
        return self._max_batch

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """Send one identify or track call."""
        require_action(self, action)
        message = self._message(action, payload, ctx)
        body = compact_json(message)
        if len(body) > MAX_EVENT_BYTES:
            raise PermanentConnectorError(
                f"{self._what}: {action} call is {len(body)} bytes; Segment takes 32 KB at most"
            )
        await self._post(f"/{_ACTIONS[action]}", body, ctx.deadline_s)
        return {"message_id": message["messageId"]}

    async def invoke_batch(self, action: str, items: Sequence[BatchItem]) -> list[ItemOutcome]:
        """Send the items through `/batch`, split by the documented count and byte limits."""
        require_action(self, action)
        outcomes: list[ItemOutcome | None] = [None] * len(items)
        chunks: list[list[tuple[int, bytes]]] = [[]]
        size = 0
        for index, item in enumerate(items):
            try:
                message = {"type": action, **self._message(action, item.payload, item.ctx)}
            except ConnectorError as exc:
                outcomes[index] = exc
                continue
            encoded = compact_json(message)
            if len(encoded) > MAX_EVENT_BYTES:
                outcomes[index] = PermanentConnectorError(
                    f"{self._what}: event is {len(encoded)} bytes; Segment takes 32 KB at most"
                )
                continue
            outcomes[index] = {"message_id": message["messageId"]}
            # `{"batch":[...]}` costs 11 bytes plus a comma per event.
            if chunks[-1] and (
                len(chunks[-1]) >= self._max_batch or size + len(encoded) + 12 > MAX_BATCH_BYTES
            ):
                chunks.append([])
                size = 0
            chunks[-1].append((index, encoded))
            size += len(encoded) + 1
        deadline = min((i.ctx.deadline_s for i in items if i.ctx.deadline_s), default=None)
        await self._send_chunks([c for c in chunks if c], outcomes, deadline)
        return [o if o is not None else PermanentConnectorError("not sent") for o in outcomes]

    async def _send_chunks(
        self,
        chunks: list[list[tuple[int, bytes]]],
        outcomes: list[ItemOutcome | None],
        deadline: float | None,
    ) -> None:
        failed: list[ConnectorError] = []
        for chunk in chunks:
            body = b'{"batch":[' + b",".join(encoded for _, encoded in chunk) + b"]}"
            try:
                await self._post("/batch", body, deadline)
            except ConnectorError as exc:
                failed.append(exc)
                for index, _ in chunk:
                    outcomes[index] = exc
        # Nothing went through: the call as a whole failed (e.g. throttled).
        if failed and len(failed) == len(chunks):
            raise failed[0]

    def _message(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        user_id = lookup(payload, self._user_id)
        if user_id in (None, ""):
            raise PermanentConnectorError(f"payload field {self._user_id!r} (userId) is required")
        message: JsonDict = {"userId": str(user_id), "messageId": _message_id(ctx.idempotency_key)}
        params = payload.get("params") or {}
        if action == "identify":
            traits = _nested(
                {
                    k: v
                    for k, p in self._traits.items()
                    if (v := lookup(payload, p)) not in (None, "")
                }
            )
            traits.update(_object(params, "traits"))
            message["traits"] = traits
            return message
        event = params.get("event") or payload.get("event")
        if not isinstance(event, str) or not event:
            raise PermanentConnectorError("payload field 'params.event' (or 'event') is required")
        message["event"] = event
        message["properties"] = {**_object(payload, "attributes"), **_object(params, "properties")}
        return message

    async def _post(self, path: str, body: bytes, limit_s: float | None) -> None:
        if self._http is None:
            self._http = new_client()
        request = self._http.build_request(
            "POST",
            self._base + path,
            content=body,
            headers={"authorization": self._auth, "content-type": "application/json"},
            timeout=limit_s,
        )
        answer = await send(self._http, request, self._what)
        if not answer.ok:
            raise error_for_status(answer.status, answer.headers, self._what, answer.detail())

    async def health(self) -> None:
        """Nothing to check without sending data: the Tracking API has no status call."""

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _message_id(key: str) -> str:
    # Segment wants fewer than 100 characters; a longer key is replaced by its digest.
    return key if len(key) <= _MESSAGE_ID_MAX else hashlib.sha256(key.encode()).hexdigest()


def _object(section: Any, key: str) -> JsonDict:
    value = section.get(key) if isinstance(section, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PermanentConnectorError(f"payload field {key!r} must be an object")
    return dict(value)


def _nested(flat: Mapping[str, Any]) -> JsonDict:
    """`{"company.name": x}` → `{"company": {"name": x}}`."""
    out: JsonDict = {}
    for dotted, value in flat.items():
        *parents, leaf = dotted.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return out
