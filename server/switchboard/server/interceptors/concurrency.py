"""Bounds the calls handled at once; an excess call gets RESOURCE_EXHAUSTED at once.

grpc's own `maximum_concurrent_rpcs` also refuses excess calls, but counts health checks
too; this interceptor leaves exempt services (health) alone so that a load balancer still
sees the server while it is busy.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager

import grpc

from switchboard.server.interceptors.wrapping import Context, Guard, GuardInterceptor, service_of


class ConcurrencyLimitInterceptor(GuardInterceptor):
    """Refuses a call when `limit` calls are already in flight."""

    def __init__(self, limit: int, exempt_services: Collection[str] = ()) -> None:
        super().__init__()
        self.limit = limit
        self.active = 0
        self._exempt = frozenset(exempt_services)

    def guard_for(self, method: str) -> Guard | None:
        return None if service_of(method) in self._exempt else self._slot

    @asynccontextmanager
    async def _slot(self, context: Context) -> AsyncIterator[None]:
        if self.active >= self.limit:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"server busy: {self.limit} calls in flight (limits.max_concurrent_rpcs); "
                "retry with backoff",
            )
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
