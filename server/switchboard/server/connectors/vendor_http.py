"""What the SaaS vendor adapters (HubSpot, Mailchimp) share: secrets, field mapping, HTTP.

- `option_secret` resolves an `env:NAME` / `file:PATH` option without ever echoing it;
- `map_fields` builds a vendor record from the contact through a `{vendor_field: path}`
  mapping (`first_name`, `attributes.plan`, ...); empty values are left out, so a sync
  never blanks a field the tool already holds;
- `VendorHttp` sends JSON with one connection pool per adapter and translates transport
  failures at the boundary: timeouts and connection errors are retryable, a bad URL is
  permanent. Status classification stays with each adapter, which knows its vendor's
  error bodies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from switchboard.server.common.paths import value_at
from switchboard.server.config.security import resolve_secret
from switchboard.server.connectors.base import JsonDict
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError

if TYPE_CHECKING:
    import httpx


def option_secret(name: str, options: Mapping[str, Any], key: str) -> str:
    """The secret an option names (`env:NAME`, `file:PATH` or the value itself).

    Raises:
        ValueError: naming the connector and option (never the secret) when it is missing
            or cannot be resolved.
    """
    reference = options.get(key)
    if not isinstance(reference, str) or not reference:
        raise ValueError(f"connector {name!r}: option {key!r} is required (env:NAME or file:PATH)")
    try:
        value = resolve_secret(reference).decode()
    except ValueError as exc:
        raise ValueError(f"connector {name!r}: option {key!r}: {exc}") from exc
    if not value:
        raise ValueError(f"connector {name!r}: option {key!r} resolves to an empty secret")
    return value


def map_fields(record: Mapping[str, Any], mapping: Mapping[str, str]) -> dict[str, Any]:
    """`{vendor_field: value}` for every mapped path that holds a non-empty value."""
    mapped: dict[str, Any] = {}
    for target, path in mapping.items():
        value = value_at(record, path)
        if value is None or value == "" or value == [] or value == {}:
            continue
        mapped[target] = value if isinstance(value, str | int | float | bool) else str(value)
    return mapped


def parse_mapping(
    name: str, options: Mapping[str, Any], key: str, default: Mapping[str, str]
) -> dict[str, str]:
    """A `{vendor_field: contact_path}` option, checked; absent: `default`."""
    value = options.get(key, default)
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ValueError(
            f"connector {name!r}: option {key!r} must map field names to contact paths"
        )
    return dict(value)


def base_url_option(name: str, options: Mapping[str, Any], default: str) -> str:
    """The `base_url` option (no trailing slash), checked to be http(s)."""
    url = options.get("base_url", default)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"connector {name!r}: option 'base_url' must be an http(s) URL")
    return url.rstrip("/")


@dataclass(frozen=True, slots=True)
class VendorResponse:
    """A vendor's answer: status, headers (lower-case names) and parsed JSON (or None)."""

    status: int
    headers: Mapping[str, str]
    body: Any
    text: str

    def json_dict(self) -> JsonDict:
        """The body when it is a JSON object, else an empty dict."""
        return self.body if isinstance(self.body, dict) else {}


class VendorHttp:
    """One pooled HTTP client for one adapter, with transport errors translated."""

    def __init__(self, what: str, max_connections: int | None = None) -> None:
        self._what = what
        self._max_connections = max_connections
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        import httpx  # only a configured vendor connector needs the HTTP client

        if self._http is None:
            limits = httpx.Limits(max_connections=self._max_connections)
            self._http = httpx.AsyncClient(follow_redirects=False, trust_env=False, limits=limits)
        return self._http

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> VendorResponse:
        """Send one request; raise `RetryableConnectorError` when no answer came back."""
        import httpx

        try:
            response = await self._client().request(
                method,
                url,
                headers=dict(headers),
                json=json_body,
                data=dict(form) if form is not None else None,
                params=dict(params) if params else None,
                timeout=timeout_s if timeout_s is not None else 30.0,
            )
        except httpx.TimeoutException as exc:
            raise RetryableConnectorError(f"{self._what} timed out") from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise PermanentConnectorError(f"{self._what}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise RetryableConnectorError(
                f"{self._what} unreachable: {type(exc).__name__}"
            ) from exc
        text = response.text
        body: Any = None
        if text:
            try:
                body = json.loads(text)
            except ValueError:
                body = None
        headers_lower = {k.lower(): v for k, v in response.headers.items()}
        return VendorResponse(response.status_code, headers_lower, body, text)

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None
