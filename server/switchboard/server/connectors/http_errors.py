"""HTTP status classification shared by adapters that speak HTTP.

Retryable: 408 (timeout), 429 (throttled) and 5xx except 501 (not implemented) and 505
(version not supported), which will answer the same way again. Every other non-2xx is
permanent. A Retry-After header (seconds or an HTTP date) travels with a retryable error.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping

from switchboard.server.errors import (
    ConnectorError,
    PermanentConnectorError,
    RetryableConnectorError,
)

_RETRYABLE_4XX = frozenset({408, 429})
_PERMANENT_5XX = frozenset({501, 505})


def is_retryable_status(status: int) -> bool:
    """Whether a failed HTTP status is worth retrying later."""
    if status in _RETRYABLE_4XX:
        return True
    return 500 <= status <= 599 and status not in _PERMANENT_5XX


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def error_for_status(
    status: int, headers: Mapping[str, str], what: str, detail: str = ""
) -> ConnectorError:
    """The project error for a non-2xx answer from `what` (a connector description)."""
    message = f"{what} answered HTTP {status}" + (f": {detail}" if detail else "")
    if is_retryable_status(status):
        return RetryableConnectorError(message, parse_retry_after(headers.get("retry-after")))
    return PermanentConnectorError(message)
