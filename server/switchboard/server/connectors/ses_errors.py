"""SES v2 errors translated into the project's retryable / permanent connector errors.

Codes from the SES API v2 reference (SendEmail, "Errors") and the developer guide's
"Errors related to the sending quotas for your Amazon SES account".
"""

from __future__ import annotations

import asyncio

from switchboard.server.connectors.http_errors import is_retryable_status
from switchboard.server.errors import (
    ConnectorError,
    PermanentConnectorError,
    RetryableConnectorError,
)

_THROTTLED = frozenset({"TooManyRequestsException", "Throttling", "ThrottlingException"})
_PERMANENT = frozenset(
    {
        "MessageRejected",
        "BadRequestException",
        "MailFromDomainNotVerifiedException",
        "NotFoundException",
        "AccountSuspendedException",
        "LimitExceededException",
        "ValidationException",
        "AccessDeniedException",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "SignatureDoesNotMatch",
        "ExpiredTokenException",
    }
)
#: The guide: after a daily-quota throttle, wait up to 10 minutes before sending again.
DAILY_QUOTA_WAIT_S = 600.0
#: SendingPaused: an operator must resume sending; check again after a few minutes.
SENDING_PAUSED_WAIT_S = 300.0


def translate(exc: BaseException) -> ConnectorError:
    """The connector error for an exception raised by an SES client call."""
    from botocore.exceptions import (  # only a configured ses connector loads botocore
        BotoCoreError,
        ClientError,
        NoCredentialsError,
        ParamValidationError,
        PartialCredentialsError,
    )

    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return for_code(str(error.get("Code", "")), str(error.get("Message", "")), status)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return PermanentConnectorError(f"SES: no usable AWS credentials ({exc})")
    if isinstance(exc, ParamValidationError):
        return PermanentConnectorError(f"SES rejected the request before sending: {exc}")
    if isinstance(exc, BotoCoreError | OSError | asyncio.TimeoutError):
        return RetryableConnectorError(f"SES unreachable: {type(exc).__name__}: {exc}")
    return RetryableConnectorError(f"SES call failed: {type(exc).__name__}")


def for_code(code: str, message: str, status: int) -> ConnectorError:
    """Classify one SES error answer by its code, then by its HTTP status."""
    what = f"SES answered {code or 'an error'} (HTTP {status})"
    what += f": {message}" if message else ""
    if code in _THROTTLED:
        daily = "daily message quota" in message.lower()
        return RetryableConnectorError(what, DAILY_QUOTA_WAIT_S if daily else None)
    if code == "SendingPausedException":
        return RetryableConnectorError(what, SENDING_PAUSED_WAIT_S)
    if code in _PERMANENT:
        return PermanentConnectorError(what)
    if is_retryable_status(status):
        return RetryableConnectorError(what)
    return PermanentConnectorError(what)
