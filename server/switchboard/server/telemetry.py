"""OpenTelemetry: the tracer and meter the server uses, and the exporters from settings.

`Telemetry` is built once per app and passed down (tests inject providers wired to the
in-memory span exporter and metric reader). Global providers are left alone, so several
apps in one process do not share state.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

from switchboard.server.telemetry_config import TelemetrySettings

log = logging.getLogger(__name__)
SCOPE = "switchboard.server"


@dataclass
class Telemetry:
    """Tracer and meter providers, plus whatever must be closed with them."""

    tracer_provider: trace.TracerProvider
    meter_provider: metrics.MeterProvider
    _closers: list[Any] = field(default_factory=list)
    #: False when nothing is exported: the RPC span and metric interceptors are left out.
    active: bool = True

    @property
    def tracer(self) -> trace.Tracer:
        """The server's tracer."""
        return self.tracer_provider.get_tracer(SCOPE)

    @property
    def meter(self) -> metrics.Meter:
        """The server's meter."""
        return self.meter_provider.get_meter(SCOPE)

    def shutdown(self) -> None:
        """Flush and stop exporters (idempotent)."""
        for provider in (self.tracer_provider, self.meter_provider):
            stop = getattr(provider, "shutdown", None)
            if stop is not None:
                stop()
        for closer in self._closers:
            closer()
        self._closers.clear()


def disabled() -> Telemetry:
    """Nothing exported, nothing recorded: no-op providers, and no RPC interceptors.

    Making spans nobody exports cost more than the whole service logic: measured with
    `make bench`'s CPU per call, GetContact went from ~210 to ~370 us and UpsertContact from
    ~450 to ~670 us with the span and metric interceptors on. So with exporter `none`, log
    lines carry the caller's traceparent trace id or a fresh one (`interceptors.call_ids`);
    choose an exporter to get traces and metrics.
    """
    return Telemetry(trace.NoOpTracerProvider(), metrics.NoOpMeterProvider(), active=False)


def build_telemetry(settings: TelemetrySettings) -> Telemetry:
    """Providers with the exporter `settings.exporter` names; `none` records nothing."""
    if settings.exporter == "none":
        return disabled()
    resource = Resource.create({"service.name": settings.service_name})
    tracer_provider = TracerProvider(resource=resource)
    readers: list[MetricReader] = []
    closers: list[Any] = []
    interval_ms = settings.metric_interval_s * 1000
    if settings.exporter == "console":
        # sys.stdout as it is now (the exporters' default is bound at import time).
        tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter(out=sys.stdout)))
        readers.append(
            PeriodicExportingMetricReader(ConsoleMetricExporter(out=sys.stdout), interval_ms)
        )
    elif settings.exporter == "otlp":
        # Imported here: only this exporter needs the OTLP protobuf and gRPC client code.
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        insecure = settings.otlp_endpoint.startswith("http://")
        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(settings.otlp_endpoint, insecure=insecure))
        )
        exporter = OTLPMetricExporter(settings.otlp_endpoint, insecure=insecure)
        readers.append(PeriodicExportingMetricReader(exporter, interval_ms))
    else:
        readers.append(_prometheus_reader(settings.prometheus_listen, closers))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    return Telemetry(tracer_provider, meter_provider, closers)


def _prometheus_reader(listen: str, closers: list[Any]) -> MetricReader:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    from switchboard.server.prometheus_page import UNIX_PREFIX, serve_registry

    reader = PrometheusMetricReader()
    if listen.startswith(UNIX_PREFIX):  # a worker: the supervisor serves the page
        closers.append(serve_registry(listen.removeprefix(UNIX_PREFIX)))
        return reader
    host, _, port = listen.rpartition(":")
    server, thread = start_http_server(int(port), addr=host.strip("[]"))
    log.info("prometheus metrics on http://%s/metrics", listen)

    def close() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    closers.append(close)
    return reader
