"""Settings: one frozen, typed object built once from defaults, a TOML file and the environment.

Defaults have one source: the typed models themselves (`Field(default=...)` here and in
`flow.py`, `security.py`, `telemetry.py`; the built-in tables, connectors, flows and scoring
rules, in `defaults.py`). Why the models and not a TOML file: every setting needs a type,
bounds and a description anyway, so its default sits beside them and is validated with them;
settings built in code (tests, tools) get the same defaults as a file does; entries a user
adds (a connector's `timeout_s`) need per-entry defaults that a TOML file cannot express; and
the generated reference reads every default from one JSON schema. The whole, as TOML, is one
command away: `switchboard config show`.

Layers, lowest first: the defaults, the TOML file, `SWITCHBOARD_*` environment variables
(nested keys joined with `__`, e.g. `SWITCHBOARD_DATABASE__PATH`; tables as JSON), then
command-line flags. Each layer *extends* the one below (`layers.py`): tables merge key by
key; in the named tables (connectors, triggers, ...) an entry set to `false` is removed and
one with `replace = true` replaces the entry below. Only this module reads the environment;
everything else receives `Settings`. Built in code, `Settings(**values)` is plain pydantic:
a value given replaces the default.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings import SettingsError as EnvParseError

from switchboard.server.config.audience import AudienceSettings
from switchboard.server.config.base import FrozenModel
from switchboard.server.config.defaults import (
    built_in_connectors,
    reference_triggers,
)
from switchboard.server.config.flow import (
    ConnectorSettings,
    InboundSettings,
    TriggerSettings,
    trigger_calls,
)
from switchboard.server.config.layers import LayerError, dotted, extend, named_tables
from switchboard.server.config.sections import (
    CacheSettings,
    ConnectorLimitsSettings,
    ConnectSettings,
    DatabaseSettings,
    DispatchSettings,
    ScoringSettings,
    check_listen,
)
from switchboard.server.config.security import (
    AuthSettings,
    KeepaliveSettings,
    LimitsSettings,
    PageTokenSettings,
    TlsSettings,
)
from switchboard.server.config.sync import SyncSettings, default_destinations
from switchboard.server.config.telemetry import TelemetrySettings

ENV_PREFIX = "SWITCHBOARD_"
_EVENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class Settings(FrozenModel):
    """Everything the server needs, validated at start-up."""

    listen: str = Field(default="localhost:50051", description="host:port to serve gRPC on.")
    worker_listen: str = Field(
        default="",
        description="host:port: with `serve --workers`, serving worker i also listens on "
        "port + i, so that clients can balance calls over the workers themselves "
        "(round_robin; docs/scaling.md#balancing-connections). Empty: the shared port only.",
    )
    role: Literal["all", "api", "dispatch"] = Field(
        default="all",
        description="all: serve calls and deliver; api: serve calls only (a dispatch process "
        "on the same store delivers); dispatch: deliver only, gRPC health on `listen` "
        "(docs/scaling.md#process-roles).",
    )
    grace_period_s: float = Field(
        default=10.0,
        ge=0,
        description="On SIGTERM, how long in-flight calls and deliveries may finish.",
    )
    drain_period_s: float = Field(
        default=5.0,
        ge=0,
        description="On SIGTERM, how long health answers NOT_SERVING, with calls still "
        "served, before new calls are refused and the grace period starts (0 with --local "
        "unless set).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="Logging threshold."
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        description="json: one object per line with trace_id; text: for a terminal.",
    )
    access_log: bool = Field(
        default=True,
        description="One INFO line per call (method, status code, duration, caller, trace "
        "id); health checks at DEBUG. About 20 µs of CPU per call (docs/operations.md).",
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    connector_limits: ConnectorLimitsSettings = Field(default_factory=ConnectorLimitsSettings)
    connectors: dict[str, ConnectorSettings] = Field(
        default_factory=built_in_connectors, description="Adapters by name."
    )
    triggers: dict[str, TriggerSettings] = Field(
        default_factory=reference_triggers, description="Event name to ordered steps."
    )
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    audience: AudienceSettings = Field(default_factory=AudienceSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    keepalive: KeepaliveSettings = Field(default_factory=KeepaliveSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    page_tokens: PageTokenSettings = Field(default_factory=PageTokenSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    inbound: InboundSettings = Field(default_factory=InboundSettings)
    connect: ConnectSettings = Field(default_factory=ConnectSettings)

    @field_validator("listen")
    @classmethod
    def _listen_has_port(cls, value: str) -> str:
        return check_listen(value)

    @field_validator("worker_listen")
    @classmethod
    def _worker_listen_has_a_port(cls, value: str) -> str:
        if value and check_listen(value).rpartition(":")[2] == "0":
            raise ValueError("worker_listen needs a fixed first port (clients must know it)")
        return value

    @field_validator("triggers")
    @classmethod
    def _event_names(cls, value: dict[str, TriggerSettings]) -> dict[str, TriggerSettings]:
        for name in value:
            if not _EVENT_NAME.match(name):
                raise ValueError(f"trigger name {name!r} must match {_EVENT_NAME.pattern}")
        return value

    @model_validator(mode="after")
    def _inbound_sources_use_triggers(self) -> Settings:
        for name, source in self.inbound.sources.items():
            if source.event is not None and source.event not in self.triggers:
                raise ValueError(
                    f"inbound source {name!r} starts event {source.event!r}, which has no trigger"
                )
        for event, trigger in self.triggers.items():
            for i, step in enumerate(trigger.steps):
                if step.wait is None:
                    continue
                src = self.inbound.sources.get(step.wait.source)
                if src is None or src.correlation_field is None:
                    raise ValueError(
                        f"trigger {event!r} step {i} waits on inbound source "
                        f"{step.wait.source!r}, which is not configured with a correlation_field"
                    )
        return self

    @model_validator(mode="before")
    @classmethod
    def _default_sync_needs_its_connector(cls, data: Any) -> Any:
        # The default destination is the embedded `crm`: settings built in code with other
        # connectors and no `sync` of their own (tests, tools) get no destination rather
        # than an error. A loaded file always carries `sync` (the defaults are dumped).
        if isinstance(data, dict) and "sync" not in data and "connectors" in data:
            wanted = {d.connector for d in default_destinations().values()}
            if not wanted <= set(data["connectors"] or {}):
                data = {**data, "sync": {"destinations": {}}}
        return data

    @model_validator(mode="after")
    def _sync_uses_configured_connectors(self) -> Settings:
        for name, dest in self.sync.destinations.items():
            if dest.connector not in self.connectors:
                raise ValueError(
                    f"sync destination {name!r} uses connector {dest.connector!r}, which is "
                    f"not configured (configured: {', '.join(sorted(self.connectors))})"
                )
        return self

    @model_validator(mode="after")
    def _steps_use_configured_connectors(self) -> Settings:
        for event, trigger in self.triggers.items():
            for i, step in enumerate(trigger_calls(trigger)):
                names = [step.connector]
                if step.fallback and step.fallback.action:
                    names.append(step.fallback.connector or step.connector)
                for name in names:
                    if name not in self.connectors:
                        raise ValueError(
                            f"trigger {event!r} step {i} uses connector {name!r}, which is not "
                            f"configured (configured: {', '.join(sorted(self.connectors))})"
                        )
        return self


class _Environment(BaseSettings, Settings):
    """Where `SWITCHBOARD_*` variables are read: Settings' fields, pydantic-settings' parser.

    Never built; it only tells `EnvSettingsSource` the prefix, the nesting and the fields.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__")


NAMED_TABLES = named_tables(Settings)
"""The tables of entries by name, whose entries a layer may remove or replace."""


class SettingsError(Exception):
    """The configuration is invalid; `problems` holds one `key.path: message` per problem."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems if problems is not None else [message]


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from the defaults, an optional TOML file, the environment and flags.

    Each layer extends the one below (see the module docstring); `overrides` (command-line
    flags) win over the environment, which wins over the file.

    Raises:
        SettingsError: with one line per problem, naming the key.
    """
    where = f" in {path}" if path else ""
    layers = [read_file(path) if path is not None else {}, environment(), overrides]
    values: dict[str, Any] = defaults()
    try:
        for layer in layers:
            values = extend(values, layer, NAMED_TABLES)
    except LayerError as exc:
        raise SettingsError(f"invalid configuration{where}:\n  {exc}", [str(exc)]) from exc
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc, path), problems(exc)) from exc


def read_file(path: Path) -> dict[str, Any]:
    """The tables of a TOML settings file.

    Raises:
        SettingsError: the file cannot be read or is not TOML.
    """
    try:
        return tomllib.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc


def environment() -> dict[str, Any]:
    """The `SWITCHBOARD_*` variables as nested tables (values still text where not JSON).

    Raises:
        SettingsError: a variable that must hold JSON does not.
    """
    try:
        return EnvSettingsSource(_Environment)()
    except EnvParseError as exc:
        raise SettingsError(f"invalid environment variable: {exc}") from exc


def problems(exc: ValidationError) -> list[str]:
    """One `key.path: message` per error (no input values: they may be secrets)."""
    lines = []
    for err in exc.errors():
        loc = dotted(tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{loc}: {msg}" if loc else msg)
    return lines


def format_validation_error(exc: ValidationError, path: Path | None) -> str:
    """One readable line per problem: `key.path: message`."""
    where = f" in {path}" if path else ""
    return "\n".join([f"invalid configuration{where}:", *(f"  {p}" for p in problems(exc))])


def settings_for_tests(db_path: Path, **overrides: Any) -> Settings:
    """Settings with a private database and an ephemeral port, for tests and tools.

    Authentication and the per-caller rate limit are off unless `auth` or `limits` is
    overridden: most tests exercise behaviour from one caller, and the security tests turn
    them on explicitly. No file and no environment: a value given replaces the default.
    """
    base: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "database": {"path": str(db_path)},
        "auth": {"enabled": False},
        "limits": {"rate_per_s": 0},
        # Every test stops its servers; the drain tests set their own period.
        "drain_period_s": 0,
    }
    base.update(overrides)
    return Settings(**base)


def defaults() -> dict[str, Any]:
    """The built-in defaults as plain tables (a fresh copy: callers may change it)."""
    return Settings().model_dump(mode="json")
