"""OpenTelemetry: the tracer and meter the server uses, and the exporters from settings.

`Telemetry` is built once per app and passed down (tests inject providers wired to the
in-memory span exporter and metric reader). Global providers are left alone, so several
apps in one process do not share state.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
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
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Link, Status

from switchboard.server.config.telemetry import TelemetrySettings
from switchboard.server.observability.logs import mask_personal_data

log = logging.getLogger(__name__)
SCOPE = "switchboard.server"

#: Histogram bucket bounds for durations in seconds: the semantic conventions' advice
#: (5 ms to 10 s) with sub-millisecond bounds in front, since most calls here take less
#: than a millisecond of server time and would all fall in the first bucket otherwise.
SECONDS_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05,
    0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
#: Bounds for waits of seconds to an hour: the time from accepting a call to delivering
#: its steps, retries and backoff included.
DELIVERY_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
    900.0, 3600.0,
)  # fmt: skip
#: Attributes that hold machine addresses set by the server itself, not a person's data;
#: masking them would turn an IPv4 address into a "phone number".
_UNMASKED = frozenset({"client.address", "server.address", "network.peer.address"})


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


def current_traceparent() -> str:
    """The W3C `traceparent` of the current span, or "" outside any valid trace.

    Kept with work that outlives the call (a run and its outbox rows), so that the work
    done later joins the call's trace.
    """
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return ""
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{ctx.trace_flags:02x}"


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
        tracer_provider.add_span_processor(span_processor(ConsoleSpanExporter(out=sys.stdout)))
        readers.append(
            PeriodicExportingMetricReader(ConsoleMetricExporter(out=sys.stdout), interval_ms)
        )
    elif settings.exporter == "otlp":
        # Imported here: only this exporter needs the OTLP protobuf and gRPC client code.
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        insecure = settings.otlp_endpoint.startswith("http://")
        tracer_provider.add_span_processor(
            span_processor(OTLPSpanExporter(settings.otlp_endpoint, insecure=insecure))
        )
        exporter = OTLPMetricExporter(settings.otlp_endpoint, insecure=insecure)
        readers.append(PeriodicExportingMetricReader(exporter, interval_ms))
    else:
        readers.append(_prometheus_reader(settings.prometheus_listen, closers))
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    return Telemetry(tracer_provider, meter_provider, closers)


def span_processor(exporter: SpanExporter, *, batch: bool = True) -> SpanProcessor:
    """How every span exporter is installed: behind `MaskingSpanExporter`.

    Args:
        exporter: where finished spans go (console, OTLP, or a test's in-memory exporter).
        batch: export from a background thread (servers); False exports on `span.end()`.
    """
    masked = MaskingSpanExporter(exporter)
    return BatchSpanProcessor(masked) if batch else SimpleSpanProcessor(masked)


class MaskingSpanExporter(SpanExporter):
    """Hands `inner` copies of the spans with personal data masked as in log lines.

    Exception events (message and stack trace), status descriptions and any attribute may
    quote a caller's input, e.g. "no contact with email 'ada@example.com'". Masking here,
    in the exporter's thread, covers every span whatever made it, at no cost to the call.
    """

    def __init__(self, inner: SpanExporter) -> None:
        self._inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Export masked copies of `spans`."""
        return self._inner.export([_masked(span) for span in spans])

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self._inner.force_flush(timeout_millis)


def _masked(span: ReadableSpan) -> ReadableSpan:
    status = span.status
    if status.description:
        status = Status(status.status_code, mask_personal_data(status.description))
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes=_mask_attributes(span.attributes),
        events=[Event(e.name, _mask_attributes(e.attributes), e.timestamp) for e in span.events],
        links=[Link(link.context, _mask_attributes(link.attributes)) for link in span.links],
        kind=span.kind,
        status=status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _mask_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {
        key: value if key in _UNMASKED else _mask_value(value)
        for key, value in (attributes or {}).items()
    }


def _mask_value(value: Any) -> Any:
    if isinstance(value, str):
        return mask_personal_data(value)
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return tuple(_mask_value(item) for item in value)
    return value


def _prometheus_reader(listen: str, closers: list[Any]) -> MetricReader:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import start_http_server

    from switchboard.server.observability.prometheus_page import UNIX_PREFIX, serve_registry

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
