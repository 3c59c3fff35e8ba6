"""Telemetry for connector attempts: a span each, counts, failures and latency by connector.

An attempt's span is a child of the call that started its run: the run and its outbox rows
keep that call's `traceparent`, and `task_context` makes it current for the delivery, so
one trace holds a trigger and all its deliveries. The span's own trace context is handed
to the adapter as `traceparent` metadata, so webhook and HTTP connectors can pass it on.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.propagate import extract, inject

from switchboard.server.connectors.base import Connector, InvokeContext, JsonDict
from switchboard.server.errors import PermanentConnectorError
from switchboard.server.observability.telemetry import SECONDS_BUCKETS


class AttemptTelemetry:
    """Wraps each connector attempt in a span and records its metrics."""

    def __init__(self, tracer: trace.Tracer, meter: metrics.Meter) -> None:
        self._tracer = tracer
        # With telemetry off, an attempt's no-op span, propagation and counters cost more
        # than delivering a step to an in-memory connector: skip them altogether.
        self._active = not (
            isinstance(tracer, trace.NoOpTracer) and isinstance(meter, metrics.NoOpMeter)
        )
        self._attempts = meter.create_counter(
            "switchboard.connector.attempts", unit="{attempt}", description="Connector calls."
        )
        self._failures = meter.create_counter(
            "switchboard.connector.failures",
            unit="{attempt}",
            description="Connector calls that failed, by error kind.",
        )
        self._duration = meter.create_histogram(
            "switchboard.connector.duration",
            unit="s",
            description="Connector call latency.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )

    def task_context(self, traceparent: str) -> contextvars.Context | None:
        """A context for a delivery task in the trace `traceparent` names (None: no trace).

        Background work with no such parent makes no spans at all, so an idle dispatcher
        adds no root spans to the trace store.
        """
        if not (self._active and traceparent):
            return None
        ctx = contextvars.copy_context()
        ctx.run(otel_context.attach, extract({"traceparent": traceparent}))
        return ctx

    def attempt(
        self, connector: str, action: str, *, run_id: str = "", attempt: int = 1
    ) -> AbstractAsyncContextManager[dict[str, str]]:
        """A span around one call; yields the metadata (traceparent) to give the adapter."""
        if not self._active:
            return _Untraced()
        return self._traced(connector, action, run_id, attempt)

    @asynccontextmanager
    async def _traced(
        self, connector: str, action: str, run_id: str, attempt: int
    ) -> AsyncIterator[dict[str, str]]:
        labels = {"connector": connector, "action": action}
        carrier: dict[str, str] = {}
        inject(carrier)  # the caller's context, kept when this span is not recorded
        attributes: dict[str, str | int] = {
            **labels,
            "switchboard.attempt": attempt,
            "switchboard.run_id": run_id,
        }
        start = time.perf_counter()
        with self._tracer.start_as_current_span(
            f"connector {connector} {action}", kind=trace.SpanKind.CLIENT, attributes=attributes
        ) as span:
            if span.get_span_context().is_valid:
                inject(carrier)
            try:
                yield carrier
            except BaseException as exc:
                self._failures.add(1, {**labels, "error": _kind(exc)})
                raise
            finally:
                self._attempts.add(1, labels)
                self._duration.record(time.perf_counter() - start, labels)


class _Untraced:
    """An attempt with telemetry off: no span, no metrics, no metadata to pass on."""

    async def __aenter__(self) -> dict[str, str]:
        return {}

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


def _kind(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, PermanentConnectorError):
        return "permanent"
    return "retryable"


async def call_connector(
    connector: Connector,
    action: str,
    payload: JsonDict,
    *,
    telemetry: AttemptTelemetry,
    timeout_s: float,
    idempotency_key: str,
    run_id: str = "",
    step_index: int = -1,
    attempt: int = 1,
) -> JsonDict:
    """One connector call, the same for deliveries and `InvokeConnector`.

    Its span (whose traceparent the adapter receives in `ctx.metadata`), its deadline and
    its context are made here and nowhere else. Raises what the adapter raises, or
    `TimeoutError` after `timeout_s`.
    """
    async with telemetry.attempt(
        connector.name, action, run_id=run_id, attempt=attempt
    ) as metadata:
        ctx = InvokeContext(
            idempotency_key=idempotency_key,
            run_id=run_id,
            step_index=step_index,
            attempt=attempt,
            deadline_s=timeout_s,
            metadata=metadata,
        )
        # asyncio.timeout, not wait_for: wait_for runs the call in a task of its own.
        async with asyncio.timeout(timeout_s):
            return await connector.invoke(action, payload, ctx)
