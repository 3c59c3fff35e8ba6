"""Bounds the calls handled at once; an excess call gets RESOURCE_EXHAUSTED at once.

grpc's own `maximum_concurrent_rpcs` also refuses excess calls, but counts health checks
too; this guard leaves exempt services (health) alone so that a load balancer still sees
the server while it is busy.
"""

from __future__ import annotations

from collections.abc import Collection

from switchboard.server.errors import ResourceExhausted
from switchboard.server.interceptors.chain import Context, Entry, Exit, service_of


class ConcurrencyLimitGuard:
    """Refuses a call when `limit` calls are already in flight."""

    def __init__(self, limit: int, exempt_services: Collection[str] = ()) -> None:
        self.limit = limit
        self.active = 0
        self._exempt = frozenset(exempt_services)
        self._entry = Entry(self._take)
        self._release_slot: Exit = self._release

    def entry_for(self, method: str) -> Entry | None:
        """Exempt services are not counted."""
        return None if service_of(method) in self._exempt else self._entry

    def _take(self, context: Context) -> Exit:
        if self.active >= self.limit:
            raise ResourceExhausted(
                f"server busy: {self.limit} calls in flight (limits.max_concurrent_rpcs); "
                "retry with backoff"
            )
        self.active += 1
        return self._release_slot

    def _release(self, context: Context, error: BaseException | None) -> None:
        self.active -= 1
