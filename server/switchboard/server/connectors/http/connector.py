"""The declarative `http` connector: a REST tool described in settings, not code."""

from __future__ import annotations

import base64
import json
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
from switchboard.server.connectors.http.oauth import GRANTS, TokenSource
from switchboard.server.connectors.http.spec import Rule, parse_actions
from switchboard.server.connectors.http_call import Answer, compact_json, new_client, send
from switchboard.server.connectors.http_errors import error_for_status, parse_retry_after
from switchboard.server.connectors.payload_paths import lookup
from switchboard.server.connectors.secret_option import resolve_reference
from switchboard.server.errors import (
    ConnectorError,
    PermanentConnectorError,
    RetryableConnectorError,
)

if TYPE_CHECKING:
    import httpx

_OPTIONS = frozenset(
    {
        "base_url",
        "headers",
        "secrets",
        "auth",
        "actions",
        "purposes",
        "health_url",
        "max_response_bytes",
    }
)
_PAYLOAD_KEYS = ("contact", "params", "attributes", "event", "run_id", "step", "lead")


class HttpConnector:
    """Requests built from templates; outcomes classified by rules. See docs/connectors/http.md.

    Options:
        actions: table of action name → request (method, url, query, headers, body,
            outcomes, result, batch).
        purposes: consent purposes the tool serves (required; `[]` for none).
        base_url: prefix of relative action URLs.
        headers: headers sent with every request (templates).
        secrets: name → `env:NAME` / `file:PATH`, usable in templates as `secrets.NAME`.
        auth: `{type = "bearer" | "basic" | "oauth2_client_credentials" |
            "oauth2_refresh_token", ...}`.
        health_url: a URL whose GET must answer 2xx for `health()` to pass.
        max_response_bytes: answer bytes read at most (default 262144).
    """

    kind: str = "http"

    def __init__(self, name: str, options: Mapping[str, Any], state: ConnectorState) -> None:
        reject_unknown_options(name, self.kind, options, _OPTIONS)
        where = f"connector {name!r}"
        self.name = name
        self.purposes: frozenset[str] = _purposes(where, options)
        self._secrets = {
            str(k): resolve_reference(f"{where}: option secrets.{k}", str(v))
            for k, v in _table(where, "secrets", options.get("secrets", {})).items()
        }
        base_url = str(options.get("base_url", ""))
        if base_url and not base_url.startswith(("http://", "https://")):
            raise ValueError(f"{where}: option 'base_url' must be an http(s) URL")
        headers = _table(where, "headers", options.get("headers", {}))
        self._specs = parse_actions(where, options.get("actions"), base_url, headers)
        self.actions: frozenset[str] = frozenset(self._specs)
        self._static_auth, self._tokens = _auth(where, options.get("auth"), self._secrets, state)
        self._health_url = options.get("health_url")
        self._max_bytes = int(options.get("max_response_bytes", 256 * 1024))
        self._http: httpx.AsyncClient | None = None
        self._what = f"http connector {name!r}"

    def max_batch(self, action: str) -> int:
        """Items one request of `action` may carry; 1 without a `batch` table."""
        spec = self._specs.get(action)
        return spec.batch.max_items if spec is not None and spec.batch is not None else 1

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """Render the action's request, send it, classify the answer."""
        require_action(self, action)
        spec = self._specs[action]
        context = self._context(payload, ctx)
        answer = await self._exchange(
            spec.method,
            str(spec.url.render(context)),
            spec.query.render(context) if spec.query else None,
            spec.headers.render(context),
            spec.body.render(context) if spec.body else None,
            ctx.deadline_s,
        )
        document = _classify(self._what, spec.rules, answer)
        if spec.result is not None:
            rendered = spec.result.render(document)
            return rendered if isinstance(rendered, dict) else {"result": rendered}
        return {"status": answer.status, "body": document["body"]}

    async def invoke_batch(self, action: str, items: Sequence[BatchItem]) -> list[ItemOutcome]:
        """Send the items in one request per `max_items`; map per-item results back."""
        require_action(self, action)
        batch = self._specs[action].batch
        if batch is None:
            return [await self._one(action, item) for item in items]
        outcomes: list[ItemOutcome | None] = [None] * len(items)
        rendered: list[tuple[int, Any]] = []
        for index, item in enumerate(items):
            try:
                rendered.append((index, batch.item.render(self._context(item.payload, item.ctx))))
            except ConnectorError as exc:
                outcomes[index] = exc
        deadline = min((i.ctx.deadline_s for i in items if i.ctx.deadline_s), default=None)
        chunks = [
            rendered[s : s + batch.max_items] for s in range(0, len(rendered), batch.max_items)
        ]
        failed: list[ConnectorError] = []
        for chunk in chunks:
            try:
                results = await self._send_batch(action, [body for _, body in chunk], deadline)
            except ConnectorError as exc:
                failed.append(exc)
                results = [exc] * len(chunk)
            for (index, _), outcome in zip(chunk, results, strict=True):
                outcomes[index] = outcome
        if failed and len(failed) == len(chunks):
            raise failed[0]  # nothing went through: the call as a whole failed
        return [o if o is not None else PermanentConnectorError("not sent") for o in outcomes]

    async def _one(self, action: str, item: BatchItem) -> ItemOutcome:
        try:
            return await self.invoke(action, item.payload, item.ctx)
        except ConnectorError as exc:
            return exc

    async def _send_batch(
        self, action: str, bodies: list[Any], deadline: float | None
    ) -> list[ItemOutcome]:
        spec = self._specs[action]
        batch = spec.batch
        assert batch is not None
        context = {"items": bodies, "secrets": self._secrets}
        answer = await self._exchange(
            batch.method,
            str(batch.url.render(context)),
            None,
            batch.headers.render(context),
            batch.body.render(context),
            deadline,
        )
        document = _classify(self._what, spec.rules, answer)
        results = lookup(document["body"], batch.results)
        if not isinstance(results, list) or len(results) != len(bodies):
            count = len(results) if isinstance(results, list) else "no"
            raise PermanentConnectorError(
                f"{self._what}: batch answer has {count} results at {batch.results!r} "
                f"for {len(bodies)} items"
            )
        return [self._item_outcome(action, answer, result) for result in results]

    def _item_outcome(self, action: str, answer: Answer, result: Any) -> ItemOutcome:
        batch = self._specs[action].batch
        assert batch is not None
        context = {"result": result, "status": answer.status}
        try:
            verdict = batch.item_outcome.render(context) if batch.item_outcome else "success"
            if verdict not in ("success", "permanent", "retryable"):
                raise PermanentConnectorError(
                    f"{self._what}: item_outcome gave {verdict!r}; expected success, "
                    "permanent or retryable"
                )
            if verdict == "success":
                mapped = batch.item_result.render(context) if batch.item_result else result
                return mapped if isinstance(mapped, dict) else {"result": mapped}
        except ConnectorError as exc:
            return exc
        detail = json.dumps(result, default=str)[:300]
        message = f"{self._what}: item failed: {detail}"
        if verdict == "retryable":
            return RetryableConnectorError(message)
        return PermanentConnectorError(message)

    def _context(self, payload: JsonDict, ctx: InvokeContext) -> dict[str, Any]:
        context: dict[str, Any] = {key: payload.get(key) for key in _PAYLOAD_KEYS}
        for key in ("contact", "params", "attributes", "lead"):
            context[key] = context[key] or {}
        context["idempotency_key"] = ctx.idempotency_key
        context["secrets"] = self._secrets
        return context

    async def _exchange(
        self,
        method: str,
        url: str,
        query: Any,
        headers: Any,
        body: Any,
        deadline: float | None,
    ) -> Answer:
        if self._http is None:
            self._http = new_client()
        sent_headers = {str(k): str(v) for k, v in dict(headers).items()}
        if body is not None:
            sent_headers.setdefault("content-type", "application/json")
        if self._static_auth:
            sent_headers["authorization"] = self._static_auth
        params = {str(k): _query_value(v) for k, v in dict(query or {}).items() if v is not None}
        content = compact_json(body) if body is not None else None
        # An OAuth token the API refuses (401) is renewed once, then the answer stands.
        for attempt in range(2):
            token = ""
            if self._tokens is not None:
                token = await self._tokens.token(self._http, self._what)
                sent_headers["authorization"] = f"Bearer {token}"
            request = self._http.build_request(
                method, url, params=params, headers=sent_headers, content=content, timeout=deadline
            )
            answer = await send(self._http, request, self._what, self._max_bytes)
            if answer.status != 401 or self._tokens is None or attempt == 1:
                return answer
            self._tokens.invalidate(token)
        raise AssertionError("unreachable")

    @property
    def token_fetches(self) -> int:
        """OAuth tokens fetched so far (0 without OAuth)."""
        return self._tokens.fetches if self._tokens is not None else 0

    async def health(self) -> None:
        """GET `health_url` when configured (2xx passes); without it, nothing to check."""
        if not self._health_url:
            return
        if self._http is None:
            self._http = new_client()
        answer = await send(
            self._http, self._http.build_request("GET", str(self._health_url)), self._what
        )
        if not answer.ok:
            raise RetryableConnectorError(f"health check answered HTTP {answer.status}")

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _classify(what: str, rules: tuple[Rule, ...], answer: Answer) -> dict[str, Any]:
    """The answer as templates see it, or the error its outcome calls for."""
    document = {"status": answer.status, "body": answer.json(), "headers": dict(answer.headers)}
    outcome = next((r.outcome for r in rules if r.matches(answer.status, document)), None)
    if outcome is None:
        if answer.ok:
            return document
        raise error_for_status(answer.status, answer.headers, what, answer.detail())
    if outcome == "success":
        return document
    message = f"{what} answered HTTP {answer.status}: {answer.detail()}"
    if outcome == "retryable":
        raise RetryableConnectorError(message, parse_retry_after(answer.headers.get("retry-after")))
    raise PermanentConnectorError(message)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else json.dumps(value)


def _purposes(where: str, options: Mapping[str, Any]) -> frozenset[str]:
    purposes = options.get("purposes")
    if not isinstance(purposes, list) or not all(isinstance(p, str) and p for p in purposes):
        raise ValueError(
            f"{where}: option 'purposes' is required: the consent purposes the tool serves, "
            'e.g. ["email_marketing"] ([] when it receives no personal data)'
        )
    return frozenset(purposes)


def _table(where: str, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: option {key!r} must be a table")
    return dict(value)


def _auth(
    where: str, spec: Any, secrets: Mapping[str, str], state: ConnectorState
) -> tuple[str, TokenSource | None]:
    if spec is None:
        return "", None
    at = f"{where}: option auth"
    table = _table(where, "auth", spec)
    kind = table.get("type")
    if kind == "bearer":
        return "Bearer " + resolve_reference(f"{at}.token", str(table.get("token", ""))), None
    if kind == "basic":
        password = resolve_reference(f"{at}.password", str(table.get("password", "")))
        pair = f"{table.get('username', '')}:{password}"
        return "Basic " + base64.b64encode(pair.encode()).decode(), None
    if isinstance(kind, str) and kind.removeprefix("oauth2_") in GRANTS:
        return "", TokenSource(at, table, state)
    raise ValueError(
        f"{at}.type must be bearer, basic, oauth2_client_credentials or oauth2_refresh_token"
    )
