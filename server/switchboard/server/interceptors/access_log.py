"""One log line per call: method, status code, duration, caller (and the trace id).

Logged by `switchboard.access` at INFO when the call ends, refused calls included (this
guard runs first). Only the method is logged, never the request or its metadata, so no
personal data reaches these lines (and the formatter masks emails and phone numbers in
every line anyway). Health checks are logged at DEBUG: balancers make one every few
seconds. The trace id comes from the formatter (`logs.trace_ids`), like every line's.

Cost: the line is built only when the level is enabled; see docs/operations.md for the
measured cost per call and `access_log = false` to turn it off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

from switchboard.server.auth.principal import CURRENT_PRINCIPAL
from switchboard.server.interceptors.chain import Context, Entry, Exit, call_status, service_of

log = logging.getLogger("switchboard.access")


class AccessLogGuard:
    """Logs every call as it ends; `quiet_services` at DEBUG instead of INFO."""

    def __init__(self, quiet_services: Collection[str] = ()) -> None:
        self._quiet = frozenset(quiet_services)

    def entry_for(self, method: str) -> Entry | None:
        """Every method is logged."""
        level = logging.DEBUG if service_of(method) in self._quiet else logging.INFO

        def start(context: Context) -> Exit | None:
            if not log.isEnabledFor(level):
                return None
            started = time.perf_counter()

            def done(context: Context, error: BaseException | None) -> None:
                ms = (time.perf_counter() - started) * 1000
                code = call_status(context, error).name
                principal = CURRENT_PRINCIPAL.get()
                caller = "-" if principal is None else principal.name
                fields: dict[str, str | float] = {
                    "method": method,
                    "code": code,
                    "duration_ms": round(ms, 3),
                    "caller": caller,
                }
                log.log(
                    level,
                    "%s %s %.1fms caller=%s",
                    method,
                    code,
                    ms,
                    caller,
                    extra={"fields": fields},
                )

            return done

        return Entry(start)
