"""RPC metrics: a call count and a latency histogram by service, method and status code.

Spans come from the upstream OpenTelemetry interceptor; this one only counts and times.
"""

from __future__ import annotations

import time

from opentelemetry import metrics

from switchboard.server.interceptors.chain import Context, Entry, Exit, call_status, service_of


class MetricsGuard:
    """Records `rpc.server.calls` and `rpc.server.duration` (ms) for every call."""

    def __init__(self, meter: metrics.Meter) -> None:
        self._calls = meter.create_counter(
            "rpc.server.calls", unit="{call}", description="RPCs handled, by status code."
        )
        self._duration = meter.create_histogram(
            "rpc.server.duration", unit="ms", description="Time to handle an RPC."
        )

    def entry_for(self, method: str) -> Entry | None:
        """Every method is counted, refused calls included (this guard runs first)."""
        attributes = {
            "rpc.system": "grpc",
            "rpc.service": service_of(method),
            "rpc.method": method.rpartition("/")[2],
        }

        def start(context: Context) -> Exit:
            started = time.perf_counter()

            def done(context: Context, error: BaseException | None) -> None:
                labels: dict[str, str | int] = {
                    **attributes,
                    "rpc.grpc.status_code": call_status(context, error).value[0],
                }
                self._calls.add(1, labels)
                self._duration.record((time.perf_counter() - started) * 1000, labels)

            return done

        return Entry(start)
