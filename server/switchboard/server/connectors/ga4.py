"""Google Analytics 4 Measurement Protocol: purchases, conversions and events.

Follows Google's Measurement Protocol (GA4) documentation
(developers.google.com/analytics/devguides/collection/protocol/ga4):

- `POST {base_url}/mp/collect?measurement_id=…&api_secret=…` with a JSON body
  `{"client_id", "user_id"?, "consent"?, "events": [{"name", "params"}]}`; `base_url` is
  `https://www.google-analytics.com` (EU processing: `https://region1.google-analytics.com`).
- Limits ("Sending events" → Limitations): at most 25 events a request and 25 params an
  event; event and param names of at most 40 characters, alphanumeric or underscore,
  starting with a letter; param values of at most 100 characters; a body under 130 kB.
- GA4 answers 2xx even for a malformed event and silently drops it, so this adapter checks
  those limits before sending (a violation is a permanent error naming the field). With
  `debug = true` it posts to the validation server (`/debug/mp/collect`) instead, which
  records nothing and answers `{"validationMessages": [{fieldPath, description,
  validationCode}]}`; any message is a permanent error. Use that in staging only.
- One request carries one `client_id`/`user_id`: a batch sends the events of each identity
  together, 25 at most a request.

Identity: `client_id` is the first non-empty of the `client_id` option's payload paths
(default: the contact's `external_ids.ga_client_id`, then `attributes.ga_client_id`), else a
pseudonymous id derived from the contact id, so server-side events still count without the
browser's cookie. `user_id` is the contact id (option `user_id`; empty to omit); never the
email, which Google forbids.

Consent: with `advertising = true` (default) the connector serves the `analytics` and
`advertising` purposes and, having been allowed to send, tells Google `ad_user_data` and
`ad_personalization` are GRANTED (GA4 conversions feed linked Google Ads accounts). With
`advertising = false` it serves `analytics` only and sends both as DENIED.

Erasure: the Measurement Protocol has no deletion call; GA4 deletes a user's data through
the Analytics User Deletion API (OAuth, per property), which this adapter does not call.
"""

from __future__ import annotations

import hashlib
import json
import re
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
from switchboard.server.connectors.payload_paths import lookup
from switchboard.server.connectors.secret_option import secret_option
from switchboard.server.errors import ConnectorError, PermanentConnectorError

if TYPE_CHECKING:
    import httpx

DEFAULT_BASE_URL = "https://www.google-analytics.com"
#: Documented Measurement Protocol limits.
MAX_EVENTS = 25
MAX_PARAMS = 25
MAX_NAME = 40
MAX_VALUE = 100
MAX_BODY_BYTES = 130_000
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_RESERVED_PREFIXES = ("_", "firebase_", "ga_", "google_")
_OPTIONS = frozenset(
    {
        "measurement_id",
        "api_secret",
        "base_url",
        "debug",
        "advertising",
        "client_id",
        "user_id",
        "currency",
    }
)
_DEFAULT_CLIENT_ID = ["contact.external_ids.ga_client_id", "attributes.ga_client_id"]


class Ga4Connector:
    """Events to one GA4 web data stream.

    Options:
        measurement_id: the stream's measurement id, `G-…` (required).
        api_secret: a Measurement Protocol API secret, `env:NAME` or `file:PATH` (required).
        base_url: API root (default `https://www.google-analytics.com`).
        debug: post to the validation server and fail on its messages (default false).
        advertising: whether conversions may serve advertising (default true).
        client_id: payload paths tried in order for the `client_id`.
        user_id: payload path of the `user_id` (default `contact.id`; "" omits it).
        currency: ISO 4217 code used when the step gives none (default: none, required).
    """

    kind: str = "ga4"
    actions: frozenset[str] = frozenset({"purchase", "conversions.track", "events.track"})

    def __init__(self, name: str, options: Mapping[str, Any], state: ConnectorState) -> None:
        reject_unknown_options(name, self.kind, options, _OPTIONS)
        self.name = name
        measurement_id = options.get("measurement_id")
        if not isinstance(measurement_id, str) or not measurement_id:
            raise ValueError(f"connector {name!r}: option 'measurement_id' is required")
        self._query = {
            "measurement_id": measurement_id,
            "api_secret": secret_option(name, options, "api_secret"),
        }
        self._base = str(options.get("base_url", DEFAULT_BASE_URL)).rstrip("/")
        if not self._base.startswith(("http://", "https://")):
            raise ValueError(f"connector {name!r}: option 'base_url' must be an http(s) URL")
        self._debug = _bool(name, options, "debug", False)
        advertising = _bool(name, options, "advertising", True)
        self.purposes: frozenset[str] = frozenset(
            {"analytics", "advertising"} if advertising else {"analytics"}
        )
        status = "GRANTED" if advertising else "DENIED"
        self._consent = {"ad_user_data": status, "ad_personalization": status}
        client_paths = options.get("client_id", _DEFAULT_CLIENT_ID)
        if not isinstance(client_paths, list) or not all(isinstance(p, str) for p in client_paths):
            raise ValueError(f"connector {name!r}: option 'client_id' must be a list of paths")
        self._client_paths: list[str] = client_paths
        self._user_id = str(options.get("user_id", "contact.id"))
        self._currency = str(options.get("currency", ""))
        self._http: httpx.AsyncClient | None = None
        self._what = f"ga4 {name!r}"

    def max_batch(self, action: str) -> int:
        """Events one request may carry (the documented 25)."""
        return MAX_EVENTS

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """Send one event."""
        require_action(self, action)
        identity = self._identity(payload)
        event = self._event(action, payload, ctx)
        await self._collect(identity, [event], ctx.deadline_s)
        return {"event": event["name"], "client_id": identity[0]}

    async def invoke_batch(self, action: str, items: Sequence[BatchItem]) -> list[ItemOutcome]:
        """Send the items' events, grouped by identity, 25 at most a request."""
        require_action(self, action)
        outcomes: list[ItemOutcome | None] = [None] * len(items)
        groups: dict[tuple[str, str], list[tuple[int, JsonDict]]] = {}
        for index, item in enumerate(items):
            try:
                identity = self._identity(item.payload)
                event = self._event(action, item.payload, item.ctx)
            except ConnectorError as exc:
                outcomes[index] = exc
                continue
            groups.setdefault(identity, []).append((index, event))
            outcomes[index] = {"event": event["name"], "client_id": identity[0]}
        deadline = min((i.ctx.deadline_s for i in items if i.ctx.deadline_s), default=None)
        calls = [
            (identity, events[start : start + MAX_EVENTS])
            for identity, events in groups.items()
            for start in range(0, len(events), MAX_EVENTS)
        ]
        failed: list[ConnectorError] = []
        for identity, chunk in calls:
            try:
                await self._collect(identity, [e for _, e in chunk], deadline)
            except ConnectorError as exc:
                failed.append(exc)
                for index, _ in chunk:
                    outcomes[index] = exc
        if failed and len(failed) == len(calls):
            raise failed[0]  # nothing went through: the call as a whole failed
        return [o if o is not None else PermanentConnectorError("not sent") for o in outcomes]

    def _identity(self, payload: JsonDict) -> tuple[str, str]:
        for path in self._client_paths:
            value = lookup(payload, path)
            if value not in (None, ""):
                client_id = str(value)
                break
        else:
            contact_id = lookup(payload, "contact.id")
            if not contact_id:
                raise PermanentConnectorError("payload field 'contact.id' is required")
            # Stable and pseudonymous: the same contact always counts as the same client.
            client_id = "sb." + hashlib.sha256(str(contact_id).encode()).hexdigest()[:20]
        user_id = lookup(payload, self._user_id) if self._user_id else None
        return client_id, str(user_id) if user_id not in (None, "") else ""

    def _event(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        params = payload.get("params") or {}
        attributes = payload.get("attributes") or {}
        extra = params.get("params") or {}
        if not isinstance(extra, dict):
            raise PermanentConnectorError("payload field 'params.params' must be an object")
        if action == "purchase":
            name = "purchase"
            event_params = self._money(params, attributes, required=True)
            # GA4 counts one purchase per transaction_id: a retried step is not counted twice.
            event_params["transaction_id"] = str(
                attributes.get("transaction_id")
                or attributes.get("order_id")
                or ctx.idempotency_key
            )
            if isinstance(attributes.get("items"), list):
                event_params["items"] = attributes["items"]
        else:
            name = _event_name(params.get("name") or payload.get("event"))
            event_params = self._money(params, attributes, required=action == "conversions.track")
        event_params.update(extra)
        event = {"name": name, "params": event_params}
        _check_event(event)
        return event

    def _money(self, params: JsonDict, attributes: JsonDict, required: bool) -> JsonDict:
        amount = params.get("value", attributes.get("amount"))
        if amount is None:
            if required:
                raise PermanentConnectorError("payload field 'attributes.amount' is required")
            return {}
        if isinstance(amount, bool) or not isinstance(amount, int | float):
            raise PermanentConnectorError("payload field 'attributes.amount' must be a number")
        currency = params.get("currency") or attributes.get("currency") or self._currency
        if not currency:
            raise PermanentConnectorError(
                "a currency is required with a value: set params.currency, "
                "attributes.currency or the connector's 'currency' option"
            )
        return {"value": amount, "currency": str(currency)}

    async def _collect(
        self, identity: tuple[str, str], events: list[JsonDict], limit_s: float | None
    ) -> None:
        client_id, user_id = identity
        document: JsonDict = {"client_id": client_id}
        if user_id:
            document["user_id"] = user_id
        document["consent"] = self._consent
        document["events"] = events
        body = compact_json(document)
        if len(body) >= MAX_BODY_BYTES:
            raise PermanentConnectorError(
                f"{self._what}: request body is {len(body)} bytes; GA4 takes under 130 kB"
            )
        if self._http is None:
            self._http = new_client()
        path = "/debug/mp/collect" if self._debug else "/mp/collect"
        request = self._http.build_request(
            "POST",
            self._base + path,
            params=self._query,
            content=body,
            headers={"content-type": "application/json"},
            timeout=limit_s,
        )
        answer = await send(self._http, request, self._what)
        if not answer.ok:
            raise error_for_status(answer.status, answer.headers, self._what, answer.detail())
        if self._debug:
            _raise_validation(self._what, answer.json())

    async def health(self) -> None:
        """Nothing to check without sending data: the protocol has no status call."""

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _bool(name: str, options: Mapping[str, Any], key: str, default: bool) -> bool:
    value = options.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"connector {name!r}: option {key!r} must be true or false")
    return value


def _event_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise PermanentConnectorError("payload field 'params.name' (or 'event') is required")
    # Switchboard event names use dots (`newsletter.signup`); GA4 names cannot.
    return re.sub(r"[^A-Za-z0-9_]", "_", value)


def _check_name(kind: str, name: str) -> None:
    if len(name) > MAX_NAME or not _NAME.match(name) or name.startswith(_RESERVED_PREFIXES):
        raise PermanentConnectorError(
            f"GA4 {kind} name {name!r} is invalid: at most {MAX_NAME} letters, digits or "
            "underscores, starting with a letter, without a reserved prefix (ga_, google_, "
            "firebase_); GA4 would drop it silently"
        )


def _check_event(event: JsonDict) -> None:
    _check_name("event", event["name"])
    params: JsonDict = event["params"]
    if len(params) > MAX_PARAMS:
        raise PermanentConnectorError(
            f"GA4 event {event['name']!r} has {len(params)} params; at most {MAX_PARAMS}"
        )
    for key, value in params.items():
        _check_name("param", key)
        values = value if key == "items" and isinstance(value, list) else [value]
        for entry in values:
            texts = entry.values() if isinstance(entry, dict) else [entry]
            for text in texts:
                if isinstance(text, str) and len(text) > MAX_VALUE:
                    raise PermanentConnectorError(
                        f"GA4 param {key!r} value is {len(text)} characters; at most {MAX_VALUE}"
                    )


def _raise_validation(what: str, answer: Any) -> None:
    messages = answer.get("validationMessages") if isinstance(answer, dict) else None
    if messages:
        described = "; ".join(
            f"{m.get('fieldPath', '?')}: {m.get('description', '')} ({m.get('validationCode', '')})"
            for m in messages
            if isinstance(m, dict)
        )
        raise PermanentConnectorError(f"{what} validation server: {described}")
    if answer is not None and not isinstance(answer, dict):
        raise PermanentConnectorError(f"{what} validation server answered {json.dumps(answer)}")
