"""The RPC server span and `rpc.server.call.duration`, by the current OpenTelemetry RPC
semantic conventions (gRPC server span and RPC metrics, semconv 1.38 and later).

Owned here rather than taken from opentelemetry-instrumentation-grpc, whose server
interceptor still emits the pre-1.38 conventions: span names with a leading slash,
`rpc.system`, a short `rpc.method` plus `rpc.service`, `net.peer.ip`, an integer
`rpc.grpc.status_code`, ERROR status on client errors such as NOT_FOUND, and the status
details (which may quote a caller's email) as the span status description.

One guard makes both, so the metric is the span's duration, as the conventions ask.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

import grpc
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.propagate import extract
from opentelemetry.trace import Status, StatusCode

from switchboard.server.interceptors.chain import Context, Entry, Exit
from switchboard.server.observability.telemetry import SECONDS_BUCKETS

Attributes = dict[str, str | int]

# Codes that mean the server failed (span status ERROR, `error.type` set); the others are
# the caller's problem and leave a server span's status unset (semconv, gRPC status table).
SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)
_WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]", "*"})


@dataclass
class ServerEndpoint:
    """Where the server listens: `server.address` and `server.port` of every RPC span.

    Filled in once the port is bound (port 0 picks one); read on each method's first call.
    """

    host: str = ""
    port: int = 0

    @classmethod
    def from_listen(cls, listen: str) -> ServerEndpoint:
        """`host:port` as in settings; a wildcard host gives no `server.address`."""
        host, _, port = listen.rpartition(":")
        host = "" if host in _WILDCARDS else host.strip("[]")
        return cls(host, int(port) if port.isdigit() else 0)

    def attributes(self) -> Attributes:
        """`server.address` (when known) and `server.port`."""
        found: Attributes = {"server.port": self.port}
        if self.host:
            found["server.address"] = self.host
        return found


class RpcTelemetryGuard:
    """A SERVER span around each call (child of the caller's `traceparent`) and its duration."""

    def __init__(
        self, tracer: trace.Tracer, meter: metrics.Meter, endpoint: ServerEndpoint | None = None
    ) -> None:
        self._tracer = tracer
        self._endpoint = endpoint or ServerEndpoint()
        self._duration = meter.create_histogram(
            "rpc.server.call.duration",
            unit="s",
            description="Duration of inbound RPCs, refused calls included.",
            explicit_bucket_boundaries_advisory=SECONDS_BUCKETS,
        )

    def entry_for(self, method: str) -> Entry | None:
        """Every method gets a span and a measurement (this guard runs first)."""
        name = method.lstrip("/")
        metric_attrs: Attributes = {"rpc.system.name": "grpc", "rpc.method": name}
        span_attrs: Attributes = {**metric_attrs, **self._endpoint.attributes()}

        def start(context: Context) -> Exit:
            parent = extract(_metadata(context))
            span = self._tracer.start_span(
                name,
                parent,
                kind=trace.SpanKind.SERVER,
                attributes={**span_attrs, **_client(context.peer())},
            )
            token = otel_context.attach(trace.set_span_in_context(span, parent))
            started = time.perf_counter()

            def done(context: Context, error: BaseException | None) -> None:
                elapsed = time.perf_counter() - started
                code = _code(context, error)
                labels: Attributes = {**metric_attrs, "rpc.response.status_code": code.name}
                if code in SERVER_ERRORS:
                    labels["error.type"] = code.name
                    span.set_status(Status(StatusCode.ERROR, code.name))
                    if error is not None and not isinstance(error, grpc.aio.AbortError):
                        span.record_exception(error)  # masked on export (telemetry.py)
                span.set_attributes(labels)
                self._duration.record(elapsed, labels)
                span.end()
                otel_context.detach(token)

            return done

        return Entry(start)


def _metadata(context: Context) -> Mapping[str, str | bytes]:
    return {key: value for key, value in context.invocation_metadata() or ()}


def _client(peer: str | None) -> Attributes:
    """`client.address` / `client.port` from grpc's peer string (`ipv4:1.2.3.4:5678`,
    `ipv6:[::1]:5678`, `unix:/path`)."""
    kind, _, rest = (peer or "").partition(":")
    if kind == "unix":
        return {"client.address": rest}
    host, _, port = unquote(rest).rpartition(":")
    if not host or not port.isdigit():
        return {}
    return {"client.address": host.strip("[]"), "client.port": int(port)}


def _code(context: Context, error: BaseException | None) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)
    if error is None:
        return grpc.StatusCode.OK
    # An exception that did not go through abort (the error mapping handles all others).
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN
