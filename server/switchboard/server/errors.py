"""The one error tree of the server.

    SwitchboardError                 base; never raised itself
    ├── InvalidArgument              bad input; carries field violations
    ├── NotFound                     unknown id, email, event, connector or action
    ├── AlreadyExists                unique value taken (email on create)
    ├── FailedPrecondition           the request is valid but the state refuses it
    │   └── IdempotencyConflict      key reused with a different request
    ├── Aborted                      optimistic concurrency: stale expected version
    ├── ResourceExhausted            a limit was hit
    ├── Unauthenticated              credentials missing, malformed, unknown or expired
    ├── PermissionDenied             authenticated, but the scope is missing
    ├── Unavailable                  a dependency is down; retrying may help
    └── ConnectorError               raised by connector adapters
        ├── RetryableConnectorError  transient: timeouts, 5xx, throttling
        └── PermanentConnectorError  will fail the same way again

`interceptors.errors` maps each type to a gRPC status code through `STATUS_BY_ERROR`; any
other exception becomes INTERNAL with a generic message.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Violation:
    """One invalid field: its dotted path and what to do about it."""

    field: str
    description: str


class SwitchboardError(Exception):
    """Base of every error the server means to show a caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(SwitchboardError):
    """The request is malformed; `violations` names each offending field."""

    def __init__(self, violations: list[Violation], message: str | None = None) -> None:
        summary = message or "invalid request: " + "; ".join(
            f"{v.field}: {v.description}" for v in violations
        )
        super().__init__(summary)
        self.violations = violations


class NotFound(SwitchboardError):
    """The addressed thing does not exist."""


class AlreadyExists(SwitchboardError):
    """A unique value is already taken."""


class FailedPrecondition(SwitchboardError):
    """The system is not in a state that allows the request."""


class IdempotencyConflict(FailedPrecondition):
    """The idempotency key was first used with a different request."""


class Aborted(SwitchboardError):
    """A concurrent change won; re-read and retry."""


class ResourceExhausted(SwitchboardError):
    """A size, rate, concurrency or load limit was hit; `retry_after_s`, when set, is the
    least wait before a retry may succeed (sent to the caller as a google.rpc.RetryInfo)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class Unauthenticated(SwitchboardError):
    """No valid credentials: the caller is not known."""


class PermissionDenied(SwitchboardError):
    """The caller is known but lacks the scope the method needs."""


class Unavailable(SwitchboardError):
    """A dependency is temporarily unavailable."""


class ConnectorError(SwitchboardError):
    """Raised by a connector adapter; subclasses say whether to retry."""


class RetryableConnectorError(ConnectorError):
    """Transient failure: retrying later may succeed, not before `retry_after_s` if set."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentConnectorError(ConnectorError):
    """The call will fail the same way again; do not retry."""


# The one table from error type to gRPC status code name. Subclasses inherit their parent's
# code unless listed. Names rather than grpc.StatusCode so that the domain can report codes
# per row (ItemError.code) without importing gRPC.
STATUS_BY_ERROR: dict[type[SwitchboardError], str] = {
    InvalidArgument: "INVALID_ARGUMENT",
    NotFound: "NOT_FOUND",
    AlreadyExists: "ALREADY_EXISTS",
    FailedPrecondition: "FAILED_PRECONDITION",
    Aborted: "ABORTED",
    ResourceExhausted: "RESOURCE_EXHAUSTED",
    Unauthenticated: "UNAUTHENTICATED",
    PermissionDenied: "PERMISSION_DENIED",
    Unavailable: "UNAVAILABLE",
    RetryableConnectorError: "UNAVAILABLE",
    PermanentConnectorError: "FAILED_PRECONDITION",
    ConnectorError: "UNAVAILABLE",
}


def status_name(exc: SwitchboardError) -> str:
    """The gRPC status code name for an error, by its nearest listed ancestor."""
    for cls in type(exc).__mro__:
        name = STATUS_BY_ERROR.get(cls)
        if name is not None:
            return name
    return "INTERNAL"
