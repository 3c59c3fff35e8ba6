"""RPC metrics: a call count and a latency histogram by service, method and status code.

Spans come from the upstream OpenTelemetry interceptor; this one only counts and times.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import grpc
from opentelemetry import metrics

from switchboard.server.interceptors.wrapping import Context, Guard, GuardInterceptor, service_of


class MetricsInterceptor(GuardInterceptor):
    """Records `rpc.server.calls` and `rpc.server.duration` (ms) for every call."""

    def __init__(self, meter: metrics.Meter) -> None:
        super().__init__()
        self._calls = meter.create_counter(
            "rpc.server.calls", unit="{call}", description="RPCs handled, by status code."
        )
        self._duration = meter.create_histogram(
            "rpc.server.duration", unit="ms", description="Time to handle an RPC."
        )

    def guard_for(self, method: str) -> Guard | None:
        return self._measure(method)

    def _measure(self, method: str) -> Callable[[Context], AbstractAsyncContextManager[None]]:
        attributes = {
            "rpc.system": "grpc",
            "rpc.service": service_of(method),
            "rpc.method": method.rpartition("/")[2],
        }

        @asynccontextmanager
        async def measured(context: Context) -> AsyncIterator[None]:
            start = time.perf_counter()
            failed: grpc.StatusCode | None = None
            try:
                yield
            except asyncio.CancelledError:
                failed = grpc.StatusCode.CANCELLED
                raise
            except BaseException:
                failed = grpc.StatusCode.UNKNOWN
                raise
            finally:
                code = _code(context, failed)
                labels: dict[str, str | int] = {
                    **attributes,
                    "rpc.grpc.status_code": code.value[0],
                }
                self._calls.add(1, labels)
                self._duration.record((time.perf_counter() - start) * 1000, labels)

        return measured


def _code(context: Context, failed: grpc.StatusCode | None) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    # An exception that did not go through abort (the error interceptor maps them all).
    return failed or grpc.StatusCode.OK
