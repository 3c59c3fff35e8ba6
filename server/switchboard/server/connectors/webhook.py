"""Webhook: POST a JSON rendering of the step to a URL, signed per Standard Webhooks.

The universal adapter for any tool with an HTTP endpoint. Each request carries:

- `webhook-id`: the step's idempotency key (the same on every retry, after restarts too),
  also sent as `Idempotency-Key` for tools that use that header;
- `webhook-timestamp`: seconds since the epoch when this attempt was signed;
- `webhook-signature`: `v1,` + base64(HMAC-SHA256(secret, f"{id}.{timestamp}.{body}")),
  where the secret is the base64 part of the configured `whsec_...` value.

TLS certificates are verified (against `ca_file` when given), redirects are refused rather
than followed (a redirect could carry a signed body elsewhere), and at most
`max_response_bytes` of the answer are read. httpx errors and HTTP statuses are translated
here into `RetryableConnectorError` / `PermanentConnectorError`.

With the `max_batch` option above 1, steps go out many to a POST (`webhook_batch.py`).
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from switchboard.server.common.signing import decode_secret, sign
from switchboard.server.connectors.base import (
    BatchItem,
    ConnectorState,
    InvokeContext,
    ItemOutcome,
    JsonDict,
    reject_unknown_options,
    require_action,
)
from switchboard.server.connectors.http_errors import error_for_status
from switchboard.server.connectors.webhook_batch import batch_body, batch_id, item_outcomes
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError

if TYPE_CHECKING:
    import httpx

_OPTIONS = frozenset(
    {
        "url",
        "secret",
        "actions",
        "ca_file",
        "max_response_bytes",
        "headers",
        "health_url",
        "max_batch",
        "max_batch_bytes",
    }
)
_DEFAULT_MAX_RESPONSE = 64 * 1024


class WebhookConnector:
    """Signed JSON POSTs to one URL.

    Options:
        url: the endpoint (http or https).
        secret: `whsec_` + base64 of the signing key.
        actions: action names accepted (default ["webhook.post"]); sent as the body's type.
        ca_file: a PEM bundle to verify the server with instead of the system store.
        max_response_bytes: answer bytes read at most (default 65536).
        headers: extra static request headers.
        health_url: a URL whose GET must answer 2xx for `health()` to pass (optional).
        max_batch: steps one POST may carry (default 1: one step a POST).
        max_batch_bytes: payload bytes one POST may carry (default 0: no limit).
    """

    kind: str = "webhook"

    def __init__(self, name: str, options: Mapping[str, Any], state: ConnectorState) -> None:
        reject_unknown_options(name, self.kind, options, _OPTIONS)
        url = options.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"connector {name!r}: option 'url' must be an http(s) URL")
        self.name = name
        self._url = url
        try:
            self._key = decode_secret(options.get("secret"))
        except ValueError as exc:
            raise ValueError(f"connector {name!r}: option 'secret': {exc}") from exc
        actions = options.get("actions", ["webhook.post"])
        if not isinstance(actions, list) or not all(isinstance(a, str) and a for a in actions):
            raise ValueError(f"connector {name!r}: option 'actions' must be a list of names")
        self.actions: frozenset[str] = frozenset(actions)
        self._max_bytes = int(options.get("max_response_bytes", _DEFAULT_MAX_RESPONSE))
        self._headers = {str(k): str(v) for k, v in dict(options.get("headers", {})).items()}
        self._ca_file: str | None = options.get("ca_file")
        self._health_url: str | None = options.get("health_url")
        self._http: httpx.AsyncClient | None = None
        self._max_batch = _count(name, "max_batch", options.get("max_batch", 1), minimum=1)
        self._max_batch_bytes = _count(name, "max_batch_bytes", options.get("max_batch_bytes", 0))

    def _client(self) -> httpx.AsyncClient:
        import httpx  # only a configured webhook connector needs the HTTP client

        if self._http is None:
            verify: ssl.SSLContext | bool = True
            if self._ca_file:
                verify = ssl.create_default_context(cafile=self._ca_file)
            self._http = httpx.AsyncClient(verify=verify, follow_redirects=False, trust_env=False)
        return self._http

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """POST the step; 2xx is success, the rest is classified by status."""
        require_action(self, action)
        timestamp = int(time.time())
        body = json.dumps(
            {"type": action, "timestamp": timestamp, "data": payload},
            separators=(",", ":"),
            default=str,
        ).encode()
        headers = {
            **self._headers,
            "content-type": "application/json",
            "webhook-id": ctx.idempotency_key,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._key, ctx.idempotency_key, timestamp, body),
            "idempotency-key": ctx.idempotency_key,
        }
        return await self._post(body, headers, ctx.deadline_s)

    def max_batch(self, action: str) -> int:
        """The `max_batch` option (1: this connector does not batch)."""
        return self._max_batch

    def max_batch_bytes(self, action: str) -> int | None:
        """The `max_batch_bytes` option (None when unset)."""
        return self._max_batch_bytes or None

    async def invoke_batch(self, action: str, items: Sequence[BatchItem]) -> list[ItemOutcome]:
        """POST the steps as one signed batch; per-item results from `results` if given."""
        require_action(self, action)
        timestamp = int(time.time())
        body = batch_body(action, timestamp, items)
        webhook_id = batch_id(items)
        headers = {
            **self._headers,
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._key, webhook_id, timestamp, body),
            "idempotency-key": webhook_id,
        }
        deadline = min((i.ctx.deadline_s for i in items if i.ctx.deadline_s), default=None)
        answer = await self._post(body, headers, deadline)
        return item_outcomes(f"webhook {self.name!r}", answer, len(items))

    async def _post(self, body: bytes, headers: dict[str, str], limit_s: float | None) -> JsonDict:
        import httpx

        what = f"webhook {self.name!r}"
        try:
            request = self._client().build_request(
                "POST", self._url, content=body, headers=headers, timeout=limit_s
            )
            response = await self._client().send(request, stream=True)
            try:
                data, truncated = await self._read_capped(response)
            finally:
                await response.aclose()
        except httpx.TimeoutException as exc:
            raise RetryableConnectorError(f"{what} timed out") from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise PermanentConnectorError(f"{what}: {exc}") from exc
        except httpx.HTTPError as exc:
            if _is_certificate_error(exc):
                raise PermanentConnectorError(f"{what}: TLS verification failed") from exc
            raise RetryableConnectorError(f"{what} unreachable: {exc}") from exc
        status = response.status_code
        if 300 <= status < 400:
            raise PermanentConnectorError(f"{what} answered a redirect ({status}); not followed")
        if not 200 <= status < 300:
            raise error_for_status(
                status, response.headers, what, data[:200].decode("utf-8", "replace")
            )
        return _result(status, data, truncated)

    async def _read_capped(self, response: httpx.Response) -> tuple[bytes, bool]:
        data = bytearray()
        async for chunk in response.aiter_bytes():
            data.extend(chunk)
            if len(data) > self._max_bytes:
                return bytes(data[: self._max_bytes]), True
        return bytes(data), False

    async def health(self) -> None:
        """GET `health_url` when configured (2xx passes); without it, nothing to check."""
        if not self._health_url:
            return
        import httpx

        try:
            response = await self._client().get(self._health_url)
        except httpx.HTTPError as exc:
            raise RetryableConnectorError(f"health check failed: {type(exc).__name__}") from exc
        if not 200 <= response.status_code < 300:
            raise RetryableConnectorError(f"health check answered HTTP {response.status_code}")

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None


def _count(name: str, option: str, value: Any, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"connector {name!r}: option {option!r} must be an integer >= {minimum}")
    return value


def _is_certificate_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _result(status: int, data: bytes, truncated: bool) -> JsonDict:
    result: JsonDict = {"status": status}
    if truncated:
        result["body_truncated"] = True
        return result
    if data:
        try:
            result["body"] = json.loads(data)
        except ValueError:
            result["body"] = data.decode("utf-8", "replace")
    return result
