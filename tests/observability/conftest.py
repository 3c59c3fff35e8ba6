"""A server wired to the in-memory span exporter and metric reader."""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from switchboard.client import Switchboard
from switchboard.server.app.build import App, build_app
from switchboard.server.config.settings import Settings
from switchboard.server.observability.logs import configure_logging
from switchboard.server.observability.telemetry import Telemetry, span_processor

T = TypeVar("T")


async def eventually(
    probe: Callable[[], T], ok: Callable[[T], bool] = bool, timeout_s: float = 3.0
) -> T:
    """`probe()` once `ok` holds, or its last value after `timeout_s`.

    The server ends its RPC span and records RPC metrics just after the answer leaves, so
    a client can see the answer a moment before the telemetry exists.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if ok(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.01)


@dataclass
class Observed:
    """The app, a client, and what telemetry recorded."""

    app: App
    sb: Switchboard
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader

    def finished(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans.get_finished_spans() if s.name == name]

    def points(self, metric: str) -> list[Any]:
        """Every data point of `metric` in a fresh collection."""
        return [p for m in self.metrics(metric) for p in m.data.data_points]

    def metrics(self, metric: str) -> list[Any]:
        """`metric` (name, unit, data) as each scope reported it in a fresh collection."""
        data = self.reader.get_metrics_data()
        return [
            m
            for resource in (data.resource_metrics if data else [])
            for scope in resource.scope_metrics
            for m in scope.metrics
            if m.name == metric
        ]


@pytest.fixture
async def observed(make_settings: Callable[..., Settings]) -> AsyncIterator[Observed]:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    # Installed as every exporter is (personal data masked), but exported on span end.
    tracer_provider.add_span_processor(span_processor(spans, batch=False))
    reader = InMemoryMetricReader()
    telemetry = Telemetry(tracer_provider, MeterProvider(metric_readers=[reader]))
    app = await build_app(make_settings(), telemetry=telemetry)
    await app.start()
    try:
        async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
            yield Observed(app, sb, spans, reader)
    finally:
        await app.stop(grace_s=1.0)
        telemetry.shutdown()


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Every log line, at INFO and above, as the server writes it (JSON), in a buffer."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
