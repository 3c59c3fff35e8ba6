"""HubSpot CRM v3: contacts upserted by email in batches, list membership, GDPR delete.

Endpoints (HubSpot developer documentation):

- `contacts.upsert`: `POST /crm/v3/objects/contacts/batch/upsert` with
  `{"inputs": [{"idProperty": "email", "id": <email>, "properties": {...},
  "objectWriteTraceId": <n>}]}`, at most 100 inputs a call; the answer is 200 with
  `results` (each with `id`, `new`, `properties`, `objectWriteTraceId`) or 207 Multi-Status
  with `results` and `errors` for the inputs that failed ("Upsert a batch of contacts",
  https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/batch/upsert-contacts;
  "Multi-status errors", https://developers.hubspot.com/docs/api-reference/error-handling).
- `lists.add`: `PUT /crm/v3/lists/{listId}/memberships/add` with a JSON array of record
  ids; answers `recordsIdsAdded` / `recordIdsMissing` ("Add records to a list",
  https://developers.hubspot.com/docs/api-reference/legacy/crm/lists/memberships/add-to-list).
  Record ids come from the contact's `external_ids[<external_id_key>]` or, when absent,
  from `POST /crm/v3/objects/contacts/batch/read` with `idProperty: email`.
- `contacts.erase`: `POST /crm/v3/objects/contacts/gdpr-delete` with
  `{"objectId": <email>, "idProperty": "email"}`: the contact and its associated content are
  deleted for good, and an email HubSpot does not know is blocklisted ("Permanently delete a
  contact (GDPR-compliant)"; without an email, the HubSpot record id from
  `external_ids` is sent as `objectId` alone,
  https://developers.hubspot.com/docs/api-reference/legacy/crm/objects/contacts/gdpr/gdpr-delete-contact).

`purchases.record` is not offered: HubSpot has no purchase record on a contact; its
equivalents (deals in a pipeline, commerce orders) need account-specific pipeline, stage and
association ids, which belong in the declarative `http` connector's configuration.

Limits ("API usage guidelines and limits",
https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines): a burst
limit per account over a rolling 10-second window, 100 requests for Free/Starter (190
Professional/Enterprise, 110 per public OAuth app). The default here, 9 requests/s with a
burst of 10, never exceeds 100 in any 10 s; raise `rate_per_s` for higher tiers.

Errors: the body is `{"status": "error", "message", "category", "errors": [...],
"correlationId"}`; 429 carries `policyName` (`TEN_SECONDLY_ROLLING`, `DAILY`) and may carry
`Retry-After`. 429, 5xx and timeouts are retryable (with Retry-After, or the policy's window),
other 4xx permanent with HubSpot's message. A whole batch refused as invalid (400/422) is
split in halves until the offending inputs are isolated, so one bad contact does not fail
its 99 neighbours.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
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
from switchboard.server.connectors.http_errors import error_for_status, parse_retry_after
from switchboard.server.connectors.hubspot_auth import OAuthToken, StaticToken, TokenSource
from switchboard.server.connectors.hubspot_results import (
    UpsertInput,
    upsert_outcomes,
    vendor_message,
)
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
        "base_url",
        "access_token",
        "client_id",
        "client_secret",
        "refresh_token",
        "token_url",
        "properties",
        "list_id",
        "external_id_key",
        "purposes",
    }
)
#: HubSpot contact property -> Switchboard contact path.
DEFAULT_PROPERTIES: Mapping[str, str] = {
    "email": "email",
    "firstname": "first_name",
    "lastname": "last_name",
    "phone": "phone",
    "company": "company",
    "jobtitle": "job_title",
    "country": "country",
}
MAX_BATCH_INPUTS = 100
_POLICY_WINDOW_S = {"TEN_SECONDLY_ROLLING": 10.0, "SECONDLY": 1.0, "DAILY": 3600.0}
_UPSERT = "/crm/v3/objects/contacts/batch/upsert"


class _InvalidRequest(PermanentConnectorError):
    """HubSpot refused the request as invalid (400/422): a batch may be split to isolate it."""


class HubSpotConnector:
    """HubSpot CRM v3 contacts and lists.

    Options:
        access_token: a private-app token (`env:NAME` / `file:PATH`); or, for OAuth,
        client_id, client_secret, refresh_token: the app's credentials and the account's
            refresh token (secrets by reference);
        token_url: the OAuth token endpoint (default `<base_url>/oauth/v1/token`).
        base_url: default `https://api.hubapi.com`.
        properties: `{hubspot_property: contact_path}`, default `DEFAULT_PROPERTIES`;
            paths may go into attributes (`attributes.plan`).
        list_id: the list `lists.add` uses when the step's params give no `list_id`.
        external_id_key: where the contact keeps its HubSpot record id in `external_ids`
            (default: the connector's name).
        purposes: consent purposes served (default none: keeping the customer record rests
            on the contract or legitimate interest, like the sandbox crm; see docs/consent.md).
    """

    kind: str = "hubspot"
    actions: frozenset[str] = frozenset({"contacts.upsert", "lists.add", "contacts.erase"})
    default_limits = DefaultLimits(rate_per_s=9.0, rate_burst=10)

    def __init__(self, name: str, options: Mapping[str, Any], state: ConnectorState) -> None:
        reject_unknown_options(name, self.kind, options, _OPTIONS)
        self.name = name
        self._base = base_url_option(name, options, "https://api.hubapi.com")
        self._http = VendorHttp(f"HubSpot ({name!r})")
        self._auth = _token_source(name, options, self._base, self._http)
        self._properties = parse_mapping(name, options, "properties", DEFAULT_PROPERTIES)
        self._list_id = str(options.get("list_id", "")) or None
        self._external_key = str(options.get("external_id_key") or name)
        purposes = options.get("purposes", [])
        if not isinstance(purposes, list) or not all(isinstance(p, str) for p in purposes):
            raise ValueError(f"connector {name!r}: option 'purposes' must be a list of names")
        self.purposes: frozenset[str] = frozenset(purposes)

    def max_batch(self, action: str) -> int:
        """Upserts and list additions go 100 to a call; erasure one contact at a time."""
        return MAX_BATCH_INPUTS if action in {"contacts.upsert", "lists.add"} else 1

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """Perform one action for one contact (a batch of one)."""
        [outcome] = await self.invoke_batch(action, [BatchItem(payload, ctx)])
        if isinstance(outcome, ConnectorError):
            raise outcome
        return outcome

    async def invoke_batch(self, action: str, items: Sequence[BatchItem]) -> list[ItemOutcome]:
        """Perform `action` for every item in as few HubSpot calls as it allows."""
        require_action(self, action)
        limit_s = _limit(items)
        if action == "contacts.upsert":
            return await self._upsert(items, limit_s)
        if action == "lists.add":
            return await self._add_to_lists(items, limit_s)
        return [await self._outcome(self._erase(item.payload, limit_s)) for item in items]

    async def health(self) -> None:
        """Read one contact: proves the host answers and the credentials are accepted."""
        await self._call("GET", "/crm/v3/objects/contacts?limit=1", None, 5.0)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # -- contacts.upsert ----------------------------------------------------------------

    async def _upsert(self, items: Sequence[BatchItem], limit_s: float | None) -> list[ItemOutcome]:
        outcomes: list[ItemOutcome | None] = [None] * len(items)
        inputs: dict[str, UpsertInput] = {}
        item_key: list[str | None] = []
        for i, item in enumerate(items):
            try:
                email, properties = self._contact_properties(item.payload)
            except PermanentConnectorError as exc:
                outcomes[i] = exc
                item_key.append(None)
                continue
            key = email.lower()
            # One contact twice in a batch: HubSpot refuses duplicate ids, and the later
            # change is the newer one, so it wins for both steps.
            if key in inputs:
                inputs[key].properties = properties
            else:
                inputs[key] = UpsertInput(str(len(inputs)), email, properties)
            item_key.append(key)
        by_trace = await self._send_upsert(list(inputs.values()), limit_s) if inputs else {}
        for i, item_of in enumerate(item_key):
            if item_of is not None:
                outcomes[i] = by_trace[inputs[item_of].trace]
        return [o if o is not None else RetryableConnectorError("no outcome") for o in outcomes]

    def _contact_properties(self, payload: JsonDict) -> tuple[str, dict[str, Any]]:
        contact, _ = payload_contact(payload)
        email: str = require(contact, "email")
        properties = map_fields(contact, self._properties)
        properties.setdefault("email", email)
        return email, properties

    async def _send_upsert(
        self, inputs: list[UpsertInput], limit_s: float | None
    ) -> dict[str, ItemOutcome]:
        body = {
            "inputs": [
                {
                    "idProperty": "email",
                    "id": i.email,
                    "properties": i.properties,
                    "objectWriteTraceId": i.trace,
                }
                for i in inputs
            ]
        }
        try:
            response = await self._call("POST", _UPSERT, body, limit_s)
        except _InvalidRequest as exc:
            if len(inputs) == 1:
                return {inputs[0].trace: exc}
            middle = len(inputs) // 2
            first = await self._send_upsert(inputs[:middle], limit_s)
            return {**first, **await self._send_upsert(inputs[middle:], limit_s)}
        return upsert_outcomes(response.json_dict(), inputs)

    # -- lists.add ----------------------------------------------------------------------

    async def _add_to_lists(
        self, items: Sequence[BatchItem], limit_s: float | None
    ) -> list[ItemOutcome]:
        outcomes: list[ItemOutcome] = [RetryableConnectorError("no outcome")] * len(items)
        by_list: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            try:
                list_id = self._list_of(item.payload)
            except PermanentConnectorError as exc:
                outcomes[i] = exc
                continue
            by_list.setdefault(list_id, []).append(i)
        for list_id, indexes in by_list.items():
            chosen = [items[i] for i in indexes]
            try:
                results = await self._add_to_list(list_id, chosen, limit_s)
            except PermanentConnectorError as exc:
                # Throttling and outages (retryable) concern the whole call and propagate;
                # a refusal of one list fails only its own items.
                results = [exc] * len(chosen)
            for i, outcome in zip(indexes, results, strict=True):
                outcomes[i] = outcome
        return outcomes

    def _list_of(self, payload: JsonDict) -> str:
        payload_contact(payload)
        params = payload.get("params") or {}
        if not isinstance(params, dict):
            raise PermanentConnectorError("payload field 'params' must be a dict")
        list_id = params.get("list_id") or self._list_id
        if not list_id:
            raise PermanentConnectorError(
                f"connector {self.name!r}: lists.add needs params.list_id (or option list_id)"
            )
        return str(list_id)

    async def _add_to_list(
        self, list_id: str, items: Sequence[BatchItem], limit_s: float | None
    ) -> list[ItemOutcome]:
        record_ids: list[str | ConnectorError] = await self._record_ids(items, limit_s)
        wanted = sorted({r for r in record_ids if isinstance(r, str)})
        added: set[str] = set()
        missing: set[str] = set()
        if wanted:
            path = f"/crm/v3/lists/{list_id}/memberships/add"
            body = (await self._call("PUT", path, wanted, limit_s)).json_dict()
            # The documented response spells it `recordsIdsAdded`; accept both spellings.
            added_ids = body.get("recordsIdsAdded") or body.get("recordIdsAdded") or []
            added = {str(x) for x in added_ids}
            missing = {str(x) for x in body.get("recordIdsMissing") or []}
        outcomes: list[ItemOutcome] = []
        for record in record_ids:
            if isinstance(record, ConnectorError):
                outcomes.append(record)
            elif record in missing:
                outcomes.append(
                    PermanentConnectorError(f"HubSpot list {list_id}: record {record} is missing")
                )
            else:
                outcomes.append(
                    {"list_id": list_id, "external_id": record, "added": record in added}
                )
        return outcomes

    async def _record_ids(
        self, items: Sequence[BatchItem], limit_s: float | None
    ) -> list[str | ConnectorError]:
        known: list[str | None] = []
        emails: list[str | None] = []
        for item in items:
            contact, _ = payload_contact(item.payload)
            external = (contact.get("external_ids") or {}).get(self._external_key)
            known.append(str(external) if external else None)
            email = contact.get("email")
            emails.append(email.lower() if isinstance(email, str) and email else None)
        lookup = sorted({e for k, e in zip(known, emails, strict=True) if k is None and e})
        found: dict[str, str] = {}
        if lookup:
            body = {
                "idProperty": "email",
                "properties": ["email"],
                "inputs": [{"id": email} for email in lookup],
            }
            read = await self._call("POST", "/crm/v3/objects/contacts/batch/read", body, limit_s)
            for result in read.json_dict().get("results", []):
                email = str((result.get("properties") or {}).get("email", "")).lower()
                if email and result.get("id") is not None:
                    found[email] = str(result["id"])
        ids: list[str | ConnectorError] = []
        for record, email in zip(known, emails, strict=True):
            if record is not None:
                ids.append(record)
            elif email is None:
                ids.append(PermanentConnectorError("the contact has no email nor HubSpot id"))
            elif email in found:
                ids.append(found[email])
            else:
                # Usually the upsert step has not reached HubSpot's index yet: try again later.
                ids.append(RetryableConnectorError("no HubSpot contact with this email yet"))
        return ids

    # -- contacts.erase -----------------------------------------------------------------

    async def _erase(self, payload: JsonDict, limit_s: float | None) -> JsonDict:
        contact, _ = payload_contact(payload)
        email = contact.get("email")
        record = (contact.get("external_ids") or {}).get(self._external_key)
        body: JsonDict
        if isinstance(email, str) and email:
            body = {"objectId": email, "idProperty": "email"}
        elif record:
            body = {"objectId": str(record)}
        else:
            # The `contact.erased` run may carry only Switchboard's id: nothing names the
            # person in HubSpot, and no retry can change that.
            raise PermanentConnectorError(
                f"contacts.erase needs the contact's email or its HubSpot id "
                f"(external_ids.{self._external_key})"
            )
        path = "/crm/v3/objects/contacts/gdpr-delete"
        response = await self._call("POST", path, body, limit_s, allow=frozenset({404}))
        return {"erased": response.status != 404}

    # -- HTTP ---------------------------------------------------------------------------

    async def _outcome(self, call: Awaitable[JsonDict]) -> ItemOutcome:
        try:
            result: JsonDict = await call
        except ConnectorError as exc:
            return exc
        return result

    async def _call(
        self,
        method: str,
        path: str,
        body: Any,
        limit_s: float | None,
        allow: frozenset[int] = frozenset(),
    ) -> VendorResponse:
        """One authenticated call; a 2xx (or an `allow`ed status) returns, the rest raises."""
        token = await self._auth.token()
        response = await self._send(method, path, body, token, limit_s)
        if response.status == 401 and self._auth.refreshable:
            # The access token expired or was revoked: refresh it once and try once more.
            self._auth.invalidate(token)
            token = await self._auth.token()
            response = await self._send(method, path, body, token, limit_s)
        if 200 <= response.status < 300 or response.status in allow:
            return response
        raise self._error(response)

    async def _send(
        self, method: str, path: str, body: Any, token: str, limit_s: float | None
    ) -> VendorResponse:
        headers = {"authorization": f"Bearer {token}", "accept": "application/json"}
        return await self._http.request(
            method, self._base + path, headers=headers, json_body=body, timeout_s=limit_s
        )

    def _error(self, response: VendorResponse) -> ConnectorError:
        what = f"HubSpot ({self.name!r})"
        body = response.json_dict()
        message = vendor_message(body) or response.text[:200]
        if response.status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            if retry_after is None:
                retry_after = _POLICY_WINDOW_S.get(str(body.get("policyName", "")), 10.0)
            return RetryableConnectorError(f"{what} throttled: {message}", retry_after)
        if response.status == 401:
            return PermanentConnectorError(f"{what} refused the credentials (HTTP 401): {message}")
        if response.status in (400, 422):
            return _InvalidRequest(f"{what} answered HTTP {response.status}: {message}")
        return error_for_status(response.status, response.headers, what, message)


def _token_source(
    name: str, options: Mapping[str, Any], base: str, http: VendorHttp
) -> TokenSource:
    if "access_token" in options:
        if "refresh_token" in options:
            raise ValueError(
                f"connector {name!r}: give either access_token or the OAuth refresh_token"
            )
        return StaticToken(option_secret(name, options, "access_token"))
    if "refresh_token" not in options:
        raise ValueError(
            f"connector {name!r}: hubspot needs access_token (private app) or "
            "client_id, client_secret and refresh_token (OAuth)"
        )
    token_url = str(options.get("token_url") or f"{base}/oauth/v1/token")
    return OAuthToken(
        http,
        token_url,
        option_secret(name, options, "client_id"),
        option_secret(name, options, "client_secret"),
        option_secret(name, options, "refresh_token"),
    )


def _limit(items: Sequence[BatchItem]) -> float | None:
    deadlines = [i.ctx.deadline_s for i in items if i.ctx.deadline_s is not None]
    return min(deadlines) if deadlines else None
