"""The client's one error tree, built from failed gRPC calls.

```
SwitchboardError                 any non-OK status; carries code, message, field violations
├── InvalidArgumentError         INVALID_ARGUMENT (see `field_violations`)
├── NotFoundError                NOT_FOUND
├── AlreadyExistsError           ALREADY_EXISTS
├── FailedPreconditionError      FAILED_PRECONDITION
├── AbortedError                 ABORTED (e.g. stale `expected_version`)
├── UnauthenticatedError         UNAUTHENTICATED
├── PermissionDeniedError        PERMISSION_DENIED
├── ResourceExhaustedError       RESOURCE_EXHAUSTED
├── DeadlineExceededError        DEADLINE_EXCEEDED
└── UnavailableError             UNAVAILABLE (after the channel's own retries)
```
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "FieldViolation",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "ResourceExhaustedError",
    "SwitchboardError",
    "UnauthenticatedError",
    "UnavailableError",
    "from_rpc_error",
]


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid field of a request.

    Attributes:
        field: Path of the field, e.g. `contact.email`.
        description: What is wrong with it, written for a person.
    """

    field: str
    description: str


class SwitchboardError(Exception):
    """A call to Switchboard ended with a non-OK gRPC status.

    Attributes:
        code: The gRPC status code.
        message: The status message sent by the server.
        field_violations: Invalid request fields, when the server reported them.
        retry_after: Seconds the server asked the caller to wait before retrying (its
            google.rpc.RetryInfo), or None when it named no delay.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        field_violations: Iterable[FieldViolation] = (),
        retry_after: float | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.field_violations = list(field_violations)
        self.retry_after = retry_after
        super().__init__(code, message, self.field_violations, retry_after)

    def __str__(self) -> str:
        text = f"{self.code.name}: {self.message}"
        if self.field_violations:
            text += " (" + "; ".join(f"{v.field}: {v.description}" for v in self.field_violations)
            text += ")"
        return text

    def __repr__(self) -> str:
        retry = "" if self.retry_after is None else f", retry_after={self.retry_after!r}"
        return (
            f"{type(self).__name__}(code={self.code.name}, message={self.message!r}, "
            f"field_violations={self.field_violations!r}{retry})"
        )


class InvalidArgumentError(SwitchboardError):
    """The request was invalid; `field_violations` says which fields."""


class NotFoundError(SwitchboardError):
    """The contact, lead, run, connector or event does not exist."""


class AlreadyExistsError(SwitchboardError):
    """The email is taken, or a create-only upsert found an existing contact."""


class FailedPreconditionError(SwitchboardError):
    """The system is not in a state that allows the call (e.g. an illegal lead transition)."""


class AbortedError(SwitchboardError):
    """A concurrent change won, e.g. a stale `expected_version`; re-read and retry."""


class UnauthenticatedError(SwitchboardError):
    """The API key is missing or wrong."""


class PermissionDeniedError(SwitchboardError):
    """The API key may not make this call."""


class ResourceExhaustedError(SwitchboardError):
    """A rate, size or load limit was hit; `retry_after`, when set, is how long to wait
    (a refused import, for one, wrote nothing and may be sent again after it)."""


class DeadlineExceededError(SwitchboardError):
    """The call did not finish within its timeout."""


class UnavailableError(SwitchboardError):
    """The server could not be reached or asked to retry, and the channel's retries ran out."""


_ERROR_TYPES: dict[grpc.StatusCode, type[SwitchboardError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
}


def from_rpc_error(exc: grpc.aio.AioRpcError) -> SwitchboardError:
    """Builds the matching `SwitchboardError` for a failed call (raise it `from exc`)."""
    code: grpc.StatusCode = exc.code()
    error_type = _ERROR_TYPES.get(code, SwitchboardError)
    status = _rich_status(exc)
    return error_type(code, exc.details() or "", _field_violations(status), _retry_after(status))


#: Trailing metadata key of the rich status (google.rpc.Status), as gRPC servers send it.
_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def _rich_status(exc: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The google.rpc.Status sent with the error, if any and if it belongs to it.

    Read here rather than through `grpcio-status`, so the client needs one package less.
    """
    for key, value in exc.trailing_metadata() or ():
        if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            try:
                status = status_pb2.Status.FromString(value)
            except DecodeError:
                return None
            # A rich status that disagrees with the call's own code or message was not
            # written for this error (e.g. a proxy rewrote the status): ignore its details.
            if status.code != exc.code().value[0] or status.message != (exc.details() or ""):
                return None
            return status
    return None


def _field_violations(status: status_pb2.Status | None) -> list[FieldViolation]:
    if status is None:
        return []
    violations: list[FieldViolation] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(
                FieldViolation(v.field, v.description) for v in bad_request.field_violations
            )
    return violations


def _retry_after(status: status_pb2.Status | None) -> float | None:
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            seconds: float = retry.retry_delay.seconds + retry.retry_delay.nanos / 1e9
            return max(seconds, 0.0)
    return None
