"""One HTTP exchange for the vendor adapters, with errors translated at the boundary.

Every adapter that speaks JSON over HTTP (Segment, GA4, the declarative `http` connector)
sends through `send`: transport failures become `RetryableConnectorError` (timeouts, refused
or reset connections) or `PermanentConnectorError` (a URL that cannot work, a failed TLS
verification); redirects are not followed (a redirect could carry credentials elsewhere) and
at most `max_bytes` of an answer are read. Status classification is the caller's: see
`http_errors.error_for_status` for the default.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError

if TYPE_CHECKING:
    import httpx

DEFAULT_MAX_ANSWER = 256 * 1024


@dataclass(frozen=True, slots=True)
class Answer:
    """What came back: status, headers (lower-case names) and the body as read."""

    status: int
    headers: Mapping[str, str]
    data: bytes
    truncated: bool = False

    @property
    def ok(self) -> bool:
        """A 2xx status."""
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body parsed as JSON, its text when it is not JSON, None when empty."""
        if not self.data or self.truncated:
            return None
        try:
            return json.loads(self.data)
        except ValueError:
            return self.data.decode("utf-8", "replace")

    def detail(self, limit: int = 300) -> str:
        """The start of the body as text, for an error message."""
        return self.data[:limit].decode("utf-8", "replace").strip()


def new_client() -> httpx.AsyncClient:
    """An HTTP client that verifies TLS, follows no redirect and ignores proxy variables."""
    import httpx  # only configured HTTP adapters need the client

    return httpx.AsyncClient(follow_redirects=False, trust_env=False)


async def send(
    client: httpx.AsyncClient,
    request: httpx.Request,
    what: str,
    max_bytes: int = DEFAULT_MAX_ANSWER,
) -> Answer:
    """Send `request` and read its answer; `what` names the connector in errors.

    Raises:
        RetryableConnectorError: timeout or network failure.
        PermanentConnectorError: a URL that cannot work, a failed TLS check, a redirect.
    """
    import httpx

    try:
        response = await client.send(request, stream=True)
        try:
            data, truncated = await _read_capped(response, max_bytes)
        finally:
            await response.aclose()
    except httpx.TimeoutException as exc:
        raise RetryableConnectorError(f"{what} timed out") from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise PermanentConnectorError(f"{what}: {exc}") from exc
    except httpx.HTTPError as exc:
        if _is_certificate_error(exc):
            raise PermanentConnectorError(f"{what}: TLS verification failed") from exc
        raise RetryableConnectorError(f"{what} unreachable: {type(exc).__name__}") from exc
    status = response.status_code
    if 300 <= status < 400:
        raise PermanentConnectorError(f"{what} answered a redirect ({status}); not followed")
    headers = {k.lower(): v for k, v in response.headers.items()}
    return Answer(status, headers, data, truncated)


async def _read_capped(response: httpx.Response, max_bytes: int) -> tuple[bytes, bool]:
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data.extend(chunk)
        if len(data) > max_bytes:
            return bytes(data[:max_bytes]), True
    return bytes(data), False


def _is_certificate_error(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def compact_json(value: Any) -> bytes:
    """JSON without spaces (what the size limits are measured on)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str).encode()
