"""One trace per run: every delivery of a run is a span in the trace of the call that started
it, and background polling makes no spans (issue 14, "One trace per run")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from switchboard.client import ContactFields, Switchboard
from switchboard.server.app.build import App
from tests.conftest import FAST_DISPATCH
from tests.observability.conftest import Observed, eventually

TRIGGER = "switchboard.v1.CampaignTriggers/TriggerCampaign"
# The embedded CRM's upsert goes out as a batch call (of one here: a child of the call too).
DELIVERIES = {
    "connector crm contacts.upsert batch",
    "connector esp lists.subscribe",
    "connector personalization offers.show",
}

StartApp = Callable[..., Awaitable[App]]
# Consent to every purpose the signup's steps serve, so that each one is delivered.
CONSENTED: ContactFields = {"consent": True, "consents": {"personalization": True}}


async def test_every_delivery_is_a_child_of_the_trigger_call(observed: Observed) -> None:
    await observed.sb.campaigns.trigger(
        "newsletter.signup", email="ada@example.com", contact=CONSENTED, wait=True
    )
    (rpc,) = await eventually(lambda: observed.finished(TRIGGER))
    attempts = [s for s in observed.spans.get_finished_spans() if s.name in DELIVERIES]
    assert {s.name for s in attempts} == DELIVERIES
    assert {(s.context.trace_id, s.parent.span_id if s.parent else None) for s in attempts} == {
        (rpc.context.trace_id, rpc.context.span_id)
    }


async def test_a_later_delivery_stays_in_the_trigger_trace(observed: Observed) -> None:
    await observed.app.dispatcher.stop(1.0)  # deliver after the call has answered
    run = await observed.sb.campaigns.trigger(
        "newsletter.signup", email="ada@example.com", contact=CONSENTED
    )
    (rpc,) = await eventually(lambda: observed.finished(TRIGGER))
    observed.app.dispatcher.start()
    async for _ in observed.sb.campaigns.watch(run.id, timeout=10.0):
        pass  # until the run ends
    (watch,) = await eventually(
        lambda: observed.finished("switchboard.v1.CampaignTriggers/WatchRun")
    )
    spans = observed.spans.get_finished_spans()
    # Apart from the WatchRun call's own trace, everything is in the trigger's trace.
    traces = {s.context.trace_id for s in spans} - {watch.context.trace_id}
    assert (traces, {s.name for s in spans} >= DELIVERIES) == ({rpc.context.trace_id}, True)


async def test_an_idle_server_makes_no_spans(observed: Observed) -> None:
    # Many dispatcher polls (every 50 ms here) and retention purges go by.
    await asyncio.sleep(0.6)
    assert [s.name for s in observed.spans.get_finished_spans()] == []


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver, as Jaeger or Tempo run one."""

    def __init__(self) -> None:
        self.spans: list[tuple[bytes, str]] = []  # (trace id, name)

    async def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                self.spans.extend((s.trace_id, s.name) for s in ss.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


class _MetricsSink(metrics_service_pb2_grpc.MetricsServiceServicer):
    """Takes the metrics the same exporter setting sends, so that they export cleanly."""

    async def Export(
        self, request: metrics_service_pb2.ExportMetricsServiceRequest, context: Any
    ) -> metrics_service_pb2.ExportMetricsServiceResponse:
        return metrics_service_pb2.ExportMetricsServiceResponse()


@pytest.fixture
async def collector() -> AsyncIterator[tuple[_Collector, int]]:
    receiver = _Collector()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(_MetricsSink(), server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield receiver, port
    finally:
        await server.stop(None)


async def test_an_otlp_consumer_gets_one_trace_for_a_trigger_and_its_deliveries(
    start_app: StartApp, collector: tuple[_Collector, int]
) -> None:
    receiver, port = collector
    app = await start_app(
        telemetry={"exporter": "otlp", "otlp_endpoint": f"http://127.0.0.1:{port}"},
        dispatch={**FAST_DISPATCH, "purge_interval_s": 0.05},
    )
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        await sb.campaigns.trigger(
            "newsletter.signup", email="ada@example.com", contact=CONSENTED, wait=True
        )
    await asyncio.sleep(0.3)  # idle polls and purges: they must not add traces
    await app.stop(grace_s=1.0)  # flushes the exporter
    names = {name for _, name in receiver.spans}
    assert ({TRIGGER, *DELIVERIES} <= names, len({tid for tid, _ in receiver.spans})) == (True, 1)
