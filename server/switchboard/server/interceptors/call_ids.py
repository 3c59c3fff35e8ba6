"""A trace id for every call's log lines when telemetry is off.

With an exporter, OpenTelemetry spans carry the trace id. Without one, spans are not made
(they cost more CPU than the service logic), yet every log line of a call should still
carry a trace id: the caller's, from its W3C `traceparent` header, or a fresh random one.
The id is worked out only when a line is logged, so a call that logs nothing pays for
one context-variable assignment.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

from switchboard.server.interceptors.chain import Context, Entry
from switchboard.server.observability.logs import CALL_TRACE_ID

# version-traceid-parentid-flags; an all-zero trace id is invalid per the W3C spec.
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$")


def trace_id_from(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The caller's trace id, or a new random one."""
    for key, value in metadata or ():
        if key == "traceparent" and isinstance(value, str):
            found = _TRACEPARENT.match(value.strip().lower())
            if found and found.group(1) != "0" * 32:
                return found.group(1)
    return os.urandom(16).hex()


class CallTrace:
    """The trace id of one call, read from its metadata on first use and then kept."""

    __slots__ = ("_context", "_trace_id")

    def __init__(self, context: Context) -> None:
        self._context: Context | None = context
        self._trace_id = ""

    def __str__(self) -> str:
        if self._context is not None:
            self._trace_id = trace_id_from(self._context.invocation_metadata())
            self._context = None
        return self._trace_id


def _set_trace(context: Context) -> None:
    # Not reset on exit: grpc.aio runs each call in a task of its own, whose context copy
    # ends with the call.
    CALL_TRACE_ID.set(CallTrace(context))


class CallIdGuard:
    """Sets `logs.CALL_TRACE_ID` for every call."""

    _entry = Entry(_set_trace)

    def entry_for(self, method: str) -> Entry | None:
        """Every method gets a trace id."""
        return self._entry
