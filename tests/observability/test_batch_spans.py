"""One span per batch call: a child of the items' trace when they share one, else a root
span linked to every item's trace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.dispatch.attempts import AttemptTelemetry, BatchCall, call_connector_batch

TRACE_A = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
TRACE_B = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def spans() -> Iterator[tuple[AttemptTelemetry, InMemorySpanExporter, InMemoryMetricReader]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    yield AttemptTelemetry(provider.get_tracer("t"), meters.get_meter("t")), exporter, reader
    provider.shutdown()
    meters.shutdown()


async def _call(telemetry: AttemptTelemetry, *traceparents: str) -> FakeConnector:
    fake = FakeConnector("dest", {"max_batch": 10}, InMemoryState())
    calls = [
        BatchCall({"params": {}}, f"r{i}:0", run_id=f"r{i}", traceparent=tp)
        for i, tp in enumerate(traceparents)
    ]
    outcomes = await call_connector_batch(fake, "echo", calls, telemetry=telemetry, timeout_s=1)
    assert len(outcomes) == len(calls)
    return fake


def _only(exporter: InMemorySpanExporter) -> ReadableSpan:
    [span] = exporter.get_finished_spans()
    return span


async def test_a_batch_from_one_trace_is_a_child_in_it(
    spans: tuple[AttemptTelemetry, InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    telemetry, exporter, _ = spans
    await _call(telemetry, TRACE_A, TRACE_A)
    span = _only(exporter)
    assert span.parent is not None
    assert f"{span.parent.trace_id:032x}" == TRACE_A.split("-")[1]
    assert span.attributes is not None
    assert span.attributes["switchboard.batch.items"] == 2
    assert not span.links


async def test_a_batch_from_several_traces_links_each_and_is_a_root(
    spans: tuple[AttemptTelemetry, InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    telemetry, exporter, _ = spans
    fake = await _call(telemetry, TRACE_A, TRACE_B, TRACE_A)
    span = _only(exporter)
    assert span.parent is None
    linked = sorted(f"{link.context.trace_id:032x}" for link in span.links)
    assert linked == sorted([TRACE_A.split("-")[1], TRACE_B.split("-")[1]])
    # One call carried every item, whichever trace it came from.
    [(_, keys)] = fake.batch_calls
    assert keys == ["r0:0", "r1:0", "r2:0"]


async def test_a_batch_call_counts_one_attempt_and_its_items(
    spans: tuple[AttemptTelemetry, InMemorySpanExporter, InMemoryMetricReader],
) -> None:
    telemetry, _, reader = spans
    await _call(telemetry, TRACE_A, TRACE_B, "")
    data = reader.get_metrics_data()
    assert data is not None
    found = {
        m.name: m.data.data_points[0]
        for r in data.resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
    }
    assert found["switchboard.connector.attempts"].value == 1
    assert found["switchboard.connector.batch_items"].sum == 3
