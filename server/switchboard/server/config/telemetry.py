"""Settings for OpenTelemetry traces and metrics (part of `config.Settings`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from switchboard.server.config.base import FrozenModel


class TelemetrySettings(FrozenModel):
    """Where traces and metrics go; nothing is exported by default."""

    exporter: Literal["none", "console", "otlp", "prometheus"] = Field(
        default="none",
        description="none, console (stdout), otlp (gRPC to otlp_endpoint) or prometheus.",
    )
    service_name: str = Field(default="switchboard", description="service.name resource.")
    otlp_endpoint: str = Field(default="http://localhost:4317", description="OTLP/gRPC collector.")
    prometheus_listen: str = Field(
        default="localhost:9464",
        description="host:port of the Prometheus scrape page (with several workers the "
        "supervisor serves it for all of them; `unix:/path` is what each worker then gets: "
        "its own series on a unix socket, for the supervisor).",
    )
    loop_lag_warn_ms: float = Field(
        default=100.0,
        gt=0,
        description="Log a WARNING when a worker's event loop runs this late (sampled every "
        "100 ms; at most one line a second). Every sample also goes to the "
        "`switchboard.event_loop.lag` histogram.",
    )
    heap_growth_s: float = Field(
        default=0.0,
        ge=0,
        description="A leak hunt: trace allocations (tracemalloc; slows the worker) and every "
        "this many seconds log a WARNING `heap growth` line with the source lines whose live "
        "allocations grew most since the first interval. 0: off.",
    )
    metric_interval_s: float = Field(
        default=60.0, gt=0, description="Metric export period (console, otlp)."
    )
