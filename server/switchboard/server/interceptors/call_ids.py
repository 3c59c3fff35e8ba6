"""A trace id for every call's log lines when telemetry is off.

With an exporter, OpenTelemetry spans carry the trace id. Without one, spans are not made
(they cost more CPU than the service logic), yet every log line of a call should still
carry a trace id: the caller's, from its W3C `traceparent` header, or a fresh random one.
This costs a context variable per call.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from switchboard.server.interceptors.wrapping import Context, Guard, GuardInterceptor
from switchboard.server.logs import CALL_TRACE_ID

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


class CallIdInterceptor(GuardInterceptor):
    """Sets `logs.CALL_TRACE_ID` for the duration of each call."""

    def __init__(self) -> None:
        super().__init__()

    def guard_for(self, method: str) -> Guard | None:
        return self._scope

    @asynccontextmanager
    async def _scope(self, context: Context) -> AsyncIterator[None]:
        token = CALL_TRACE_ID.set(trace_id_from(context.invocation_metadata()))
        try:
            yield
        finally:
            CALL_TRACE_ID.reset(token)
