"""The exporters chosen in settings: console, OTLP (to a fake collector on loopback) and a
Prometheus scrape page."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from switchboard.client import Switchboard
from switchboard.server.app.build import App

StartApp = Callable[..., Awaitable[App]]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def _one_call(app: App) -> None:
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=5.0) as sb:
        await sb.contacts.upsert(email="ada@example.com")


async def test_console_exporter_prints_rpc_spans(
    start_app: StartApp, capsys: pytest.CaptureFixture[str]
) -> None:
    app = await start_app(telemetry={"exporter": "console"})
    await _one_call(app)
    await app.stop(grace_s=1.0)
    assert "switchboard.v1.ContactSync/UpsertContact" in capsys.readouterr().out


async def test_prometheus_page_serves_rpc_metrics(start_app: StartApp) -> None:
    port = _free_port()
    app = await start_app(
        telemetry={"exporter": "prometheus", "prometheus_listen": f"127.0.0.1:{port}"}
    )
    await _one_call(app)

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            body: bytes = resp.read()
            return body.decode()

    page = await asyncio.to_thread(scrape)
    assert 'rpc_method="switchboard.v1.ContactSync/UpsertContact"' in page


class _Collector(
    trace_service_pb2_grpc.TraceServiceServicer, metrics_service_pb2_grpc.MetricsServiceServicer
):
    def __init__(self) -> None:
        self.span_names: list[str] = []
        self.metric_names: list[str] = []

    async def Export(self, request: Any, context: Any) -> Any:
        if isinstance(request, trace_service_pb2.ExportTraceServiceRequest):
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    self.span_names.extend(s.name for s in ss.spans)
            return trace_service_pb2.ExportTraceServiceResponse()
        for rm in request.resource_metrics:
            for sm in rm.scope_metrics:
                self.metric_names.extend(m.name for m in sm.metrics)
        return metrics_service_pb2.ExportMetricsServiceResponse()


async def test_otlp_exporter_sends_spans_and_metrics(start_app: StartApp) -> None:
    collector = _Collector()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)  # type: ignore[no-untyped-call]
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(collector, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        app = await start_app(
            telemetry={"exporter": "otlp", "otlp_endpoint": f"http://127.0.0.1:{port}"}
        )
        await _one_call(app)
        await app.stop(grace_s=1.0)  # flushes both exporters
    finally:
        await server.stop(None)
    assert (
        "switchboard.v1.ContactSync/UpsertContact" in collector.span_names,
        "rpc.server.call.duration" in collector.metric_names,
    ) == (True, True)
