"""The standard `grpc.health.v1.Health` service, with the shutdown a load balancer can see.

Written here rather than taken from `grpc_health.v1.health.aio.HealthServicer` for two
reasons. Its Watch keeps one condition per service and drops it when any watcher of that
service leaves, so the other watchers of the service never hear of a later change (a
balancer that reconnected once would miss NOT_SERVING). And its Watch streams never end,
so a graceful stop always waited the whole grace period for them. Here every change wakes
every watcher, and `close` ends the streams once the drain is over.

Watch is a coroutine that sends with `context.write`, as the upstream one is; the guard
chain wraps both streaming styles (`interceptors.chain._streaming`).
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeAlias

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SERVICE_NAME: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
Status: TypeAlias = int  # a HealthCheckResponse.ServingStatus value
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class HealthService(health_pb2_grpc.HealthServicer):
    """Serving status per service name ("" is the whole server), for Check and Watch."""

    def __init__(self) -> None:
        self._status: dict[str, Status] = {"": SERVING}
        self._changed = asyncio.Event()
        self._shutting_down = False
        self._closed = False

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> Any:
        """The service's status now; NOT_FOUND for a service the server does not know."""
        status = self._status.get(request.service)
        if status is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=status)

    async def Watch(self, request: health_pb2.HealthCheckRequest, context: Any) -> None:
        """Send the status now and on every change (SERVICE_UNKNOWN for an unknown service);
        end the stream when `close` is called."""
        sent: Status | None = None
        while True:
            changed = self._changed  # taken first: a change while writing is not missed
            status = self._status.get(request.service, _UNKNOWN)
            if status != sent:
                await context.write(health_pb2.HealthCheckResponse(status=status))
                sent = status
            if self._closed:
                return
            await changed.wait()

    @property
    def shutting_down(self) -> bool:
        """True once `enter_graceful_shutdown` ran."""
        return self._shutting_down

    async def set(self, service: str, status: Status) -> None:
        """Set a service's status; ignored after `enter_graceful_shutdown`."""
        if not self._shutting_down:
            self._status[service] = status
            self._notify()

    async def enter_graceful_shutdown(self) -> None:
        """Every service NOT_SERVING, for good."""
        self._shutting_down = True
        for service in self._status:
            self._status[service] = NOT_SERVING
        self._notify()

    def close(self) -> None:
        """End every Watch stream (after its last status is sent) and any later one."""
        self._closed = True
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
