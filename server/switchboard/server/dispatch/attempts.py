"""Telemetry for connector attempts: a span each, counts, failures and latency by connector.

An attempt's span is a child of the call that started its run: the run and its outbox rows
keep that call's `traceparent`, and `task_context` makes it current for the delivery, so
one trace holds a trigger and all its deliveries. The span's own trace context is handed
to the adapter as `traceparent` metadata, so webhook and HTTP connectors can pass it on.

A batch call (`call_connector_batch`) is one vendor call for steps of many runs, so it gets
one span. When all its items come from one trace (an import, one caller's burst), the span
is a child in that trace, as a single attempt would be. When they come from several, no
one of them is its parent: the span starts a trace of its own, and every item's trace is
linked to it (span links, the OpenTelemetry convention for batch processing), so each
caller's trace still leads to the call that delivered its step.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.propagate import extract, inject

from switchboard.server.connectors.base import (
    BatchConnector,
    BatchItem,
    Connector,
    InvokeContext,
    ItemOutcome,
    JsonDict,
)
from switchboard.server.errors import ConnectorError, PermanentConnectorError
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
        self._batch_items = meter.create_histogram(
            "switchboard.connector.batch_items",
            unit="{item}",
            description="Steps carried by one batch call.",
            explicit_bucket_boundaries_advisory=_ITEM_BUCKETS,
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

    def batch_attempt(
        self, connector: str, action: str, traceparents: Sequence[str]
    ) -> AbstractAsyncContextManager[dict[str, str]]:
        """A span around one batch call of items from `traceparents` (see the module doc)."""
        if not self._active:
            return _Untraced()
        return self._traced_batch(connector, action, traceparents)

    @asynccontextmanager
    async def _traced_batch(
        self, connector: str, action: str, traceparents: Sequence[str]
    ) -> AsyncIterator[dict[str, str]]:
        labels = {"connector": connector, "action": action}
        traces = list(dict.fromkeys(t for t in traceparents if t))
        parent = extract({"traceparent": traces[0]}) if len(traces) == 1 else otel_context.Context()
        links = [
            trace.Link(trace.get_current_span(extract({"traceparent": t})).get_span_context())
            for t in traces[:_MAX_LINKS]
        ]
        attributes: dict[str, str | int] = {**labels, "switchboard.batch.items": len(traceparents)}
        carrier: dict[str, str] = {}
        start = time.perf_counter()
        with self._tracer.start_as_current_span(
            f"connector {connector} {action} batch",
            context=parent,
            kind=trace.SpanKind.CLIENT,
            attributes=attributes,
            links=links if len(traces) > 1 else None,
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
                self._batch_items.record(len(traceparents), labels)
                self._duration.record(time.perf_counter() - start, labels)


# A span keeps at most 128 links by default (OTEL_SPAN_LINK_COUNT_LIMIT); a batch of more
# traces links the first 128.
_MAX_LINKS = 128
_ITEM_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)


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


@dataclass(frozen=True, slots=True)
class BatchCall:
    """One step inside a batch call: what `call_connector` takes for a single step."""

    payload: JsonDict
    idempotency_key: str
    run_id: str = ""
    step_index: int = -1
    attempt: int = 1
    traceparent: str = ""


async def call_connector_batch(
    connector: BatchConnector,
    action: str,
    calls: Sequence[BatchCall],
    *,
    telemetry: AttemptTelemetry,
    timeout_s: float,
) -> list[ItemOutcome]:
    """One batch call: `call_connector` for several steps of one connector and action.

    One span for the whole call (see the module docstring), one deadline (`timeout_s`), and
    each item's own context (idempotency key, run, attempt). Returns one outcome per item,
    in order; raises what the adapter raises (the whole batch failed), or `TimeoutError`.
    An adapter that answers with the wrong number of outcomes breaks the contract: that
    is a `PermanentConnectorError` for the whole batch, as no retry would fix it.
    """
    traceparents = [call.traceparent for call in calls]
    async with telemetry.batch_attempt(connector.name, action, traceparents) as metadata:
        items = [
            BatchItem(
                call.payload,
                InvokeContext(
                    idempotency_key=call.idempotency_key,
                    run_id=call.run_id,
                    step_index=call.step_index,
                    attempt=call.attempt,
                    deadline_s=timeout_s,
                    metadata=metadata,
                ),
            )
            for call in calls
        ]
        async with asyncio.timeout(timeout_s):
            outcomes = await connector.invoke_batch(action, items)
    if len(outcomes) != len(items):
        raise PermanentConnectorError(
            f"connector {connector.name!r} answered {len(outcomes)} outcomes "
            f"for a batch of {len(items)}"
        )
    return [_checked(outcome) for outcome in outcomes]


def _checked(outcome: object) -> ItemOutcome:
    if isinstance(outcome, dict | ConnectorError):
        return outcome
    return PermanentConnectorError(f"adapter returned {type(outcome).__name__} for an item")
