"""Settings for OpenTelemetry traces and metrics (part of `config.Settings`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from switchboard.server.default_values import DEFAULTS

_T = DEFAULTS["telemetry"]


class TelemetrySettings(BaseModel):
    """Where traces and metrics go; nothing is exported by default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    exporter: Literal["none", "console", "otlp", "prometheus"] = Field(
        default=_T["exporter"],
        description="none, console (stdout), otlp (gRPC to otlp_endpoint) or prometheus.",
    )
    service_name: str = Field(default=_T["service_name"], description="service.name resource.")
    otlp_endpoint: str = Field(default=_T["otlp_endpoint"], description="OTLP/gRPC collector.")
    prometheus_listen: str = Field(
        default=_T["prometheus_listen"],
        description="host:port of the Prometheus scrape page (with several workers the "
        "supervisor serves it for all of them; `unix:/path` is what each worker then gets: "
        "its own series on a unix socket, for the supervisor).",
    )
    metric_interval_s: float = Field(
        default=_T["metric_interval_s"], gt=0, description="Metric export period (console, otlp)."
    )
