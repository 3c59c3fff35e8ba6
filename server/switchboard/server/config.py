"""Settings: one frozen, typed object built once from defaults, a TOML file and the environment.

Precedence, highest first: `SWITCHBOARD_*` environment variables (nested keys joined with
`__`, e.g. `SWITCHBOARD_DATABASE__PATH`; tables as JSON), the TOML file, then the built-in
`defaults.toml`. Only this module reads the environment; everything else receives `Settings`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from switchboard.server.default_values import DEFAULTS
from switchboard.server.flow_config import (
    ConnectorSettings,
    InboundSettings,
    TriggerSettings,
    trigger_calls,
)
from switchboard.server.security_config import (
    AuthSettings,
    KeepaliveSettings,
    LimitsSettings,
    TlsSettings,
)
from switchboard.server.telemetry_config import TelemetrySettings

_EVENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


_DEFAULTS = DEFAULTS


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DatabaseSettings(_Frozen):
    """The SQLite store."""

    path: str = Field(
        default=_DEFAULTS["database"]["path"],
        description="SQLite file; `:memory:` is not supported (use a temp file).",
    )
    busy_timeout_ms: int = Field(
        default=_DEFAULTS["database"]["busy_timeout_ms"],
        ge=0,
        description="How long a writer waits for a lock.",
    )
    readers: int = Field(
        default=_DEFAULTS["database"]["readers"],
        ge=1,
        le=32,
        description="Read connections (threads).",
    )
    inline_point_reads: bool = Field(
        default=_DEFAULTS["database"]["inline_point_reads"],
        description="Run small indexed lookups on the event loop instead of a reader thread "
        "(faster; turn off if the disk is slow enough to stall the loop).",
    )


class CacheSettings(_Frozen):
    """Read cache for contacts (aiocache): in process memory, or shared in Redis."""

    backend: Literal["memory", "redis"] = Field(
        default=_DEFAULTS["cache"]["backend"],
        description="`memory`: one cache per process; `redis`: one cache shared by every "
        "worker and replica (needs the `redis` extra).",
    )
    ttl_s: float = Field(
        default=_DEFAULTS["cache"]["ttl_s"], gt=0, description="Seconds an entry lives."
    )
    max_entries: int = Field(
        default=_DEFAULTS["cache"]["max_entries"],
        ge=0,
        description="Upper bound on entries in memory (Redis is bounded by its own "
        "`maxmemory`); 0 disables the cache with either backend.",
    )
    invalidation_hold_s: float = Field(
        default=_DEFAULTS["cache"]["invalidation_hold_s"],
        gt=0,
        description="After a write, its keys refuse new entries this long (at most `ttl_s`), "
        "so a read that fetched the old row just before the write cannot cache it after.",
    )
    redis_url: str = Field(
        default=_DEFAULTS["cache"]["redis_url"],
        description="`redis://[user:password@]host:port/db` (`rediss://` for TLS); "
        "used when `backend` is `redis`.",
    )
    redis_timeout_s: float = Field(
        default=_DEFAULTS["cache"]["redis_timeout_s"],
        gt=0,
        description="Connect and reply timeout for one Redis command; past it the "
        "lookup counts as a miss.",
    )
    namespace: str = Field(
        default=_DEFAULTS["cache"]["namespace"],
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
        description="Prefix of every Redis key (`<namespace>:contact:…`), so that "
        "deployments can share one Redis.",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            raise ValueError("must look like redis://host:6379/0 (or rediss:// for TLS)")
        try:
            parts.port  # noqa: B018 - raises ValueError when the port is not a number
        except ValueError as exc:
            raise ValueError(f"bad port: {exc}") from exc
        db = parts.path.strip("/")
        if db and not db.isdigit():
            raise ValueError("the path must be a database number, e.g. /0")
        return value


class DispatchSettings(_Frozen):
    """The outbox worker."""

    poll_interval_s: float = Field(
        default=_DEFAULTS["dispatch"]["poll_interval_s"],
        gt=0,
        description="Idle poll period for new steps.",
    )
    batch_size: int = Field(
        default=_DEFAULTS["dispatch"]["batch_size"],
        ge=1,
        le=1000,
        description="Steps claimed per poll.",
    )
    lease_s: float = Field(
        default=_DEFAULTS["dispatch"]["lease_s"],
        gt=0,
        description="A claimed step is re-offered after this long.",
    )
    max_attempts: int = Field(
        default=_DEFAULTS["dispatch"]["max_attempts"],
        ge=1,
        le=100,
        description="Default attempts per step.",
    )
    base_backoff_s: float = Field(
        default=_DEFAULTS["dispatch"]["base_backoff_s"],
        ge=0,
        description="First retry delay (doubles each time).",
    )
    max_backoff_s: float = Field(
        default=_DEFAULTS["dispatch"]["max_backoff_s"], ge=0, description="Retry delay cap."
    )
    concurrency: int = Field(
        default=_DEFAULTS["dispatch"]["concurrency"],
        ge=1,
        le=1000,
        description="Steps delivered at once, all connectors together.",
    )
    connector_concurrency: int = Field(
        default=_DEFAULTS["dispatch"]["connector_concurrency"],
        ge=1,
        le=1000,
        description="Default steps in flight per connector (a slow one holds only these).",
    )
    max_retry_after_s: float = Field(
        default=_DEFAULTS["dispatch"]["max_retry_after_s"],
        ge=0,
        description="Longest Retry-After a tool may ask for; longer requests are capped.",
    )
    breaker_failures: int = Field(
        default=_DEFAULTS["dispatch"]["breaker_failures"],
        ge=1,
        description="Default consecutive failures that open a connector's circuit.",
    )
    breaker_cooldown_s: float = Field(
        default=_DEFAULTS["dispatch"]["breaker_cooldown_s"],
        gt=0,
        description="Default seconds an open circuit waits before one probe call.",
    )
    per_contact_ordering: bool = Field(
        default=_DEFAULTS["dispatch"]["per_contact_ordering"],
        description="Default: deliver a contact's steps for one connector one at a time, in order.",
    )
    idempotency_retention_s: float = Field(
        default=_DEFAULTS["dispatch"]["idempotency_retention_s"],
        ge=86400,
        description="How long idempotency keys are kept (at least 24 hours).",
    )
    purge_interval_s: float = Field(
        default=_DEFAULTS["dispatch"]["purge_interval_s"],
        gt=0,
        description="How often expired idempotency keys are purged.",
    )


class ScoringSettings(_Frozen):
    """Lead scoring rules: configuration, not code."""

    half_life_days: float = Field(
        default=_DEFAULTS["scoring"]["half_life_days"],
        gt=0,
        description="Activity points halve after this many days.",
    )
    max_activities: int = Field(
        default=_DEFAULTS["scoring"]["max_activities"],
        ge=1,
        description="Most recent activities considered.",
    )
    activity_points: dict[str, float] = Field(
        default_factory=lambda: dict(_DEFAULTS["scoring"]["activity_points"]),
        description="Points per activity type (before decay).",
    )
    profile_points: dict[str, float] = Field(
        default_factory=lambda: dict(_DEFAULTS["scoring"]["profile_points"]),
        description="Points when a profile field is filled in (consent: when opted in).",
    )
    title_keywords: dict[str, float] = Field(
        default_factory=lambda: dict(_DEFAULTS["scoring"]["title_keywords"]),
        description="Points for the best keyword found in the job title.",
    )
    status_points: dict[str, float] = Field(
        default_factory=lambda: dict(_DEFAULTS["scoring"]["status_points"]),
        description="Points per lead status.",
    )


def _section(name: str) -> Any:
    return lambda: _DEFAULTS[name]


class Settings(BaseSettings):
    """Everything the server needs, validated at start-up."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix="SWITCHBOARD_",
        env_nested_delimiter="__",
        validate_default=True,
    )

    listen: str = Field(default=_DEFAULTS["listen"], description="host:port to serve gRPC on.")
    grace_period_s: float = Field(
        default=_DEFAULTS["grace_period_s"],
        ge=0,
        description="On SIGTERM, how long in-flight calls and deliveries may finish.",
    )
    drain_period_s: float = Field(
        default=_DEFAULTS["drain_period_s"],
        ge=0,
        description="On SIGTERM, how long health answers NOT_SERVING, with calls still "
        "served, before new calls are refused and the grace period starts (0 with --local "
        "unless set).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default=_DEFAULTS["log_level"], description="Logging threshold."
    )
    log_format: Literal["json", "text"] = Field(
        default=_DEFAULTS["log_format"],
        description="json: one object per line with trace_id; text: for a terminal.",
    )
    access_log: bool = Field(
        default=_DEFAULTS["access_log"],
        description="One INFO line per call (method, status code, duration, caller, trace "
        "id); health checks at DEBUG. About 20 µs of CPU per call (docs/operations.md).",
    )
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    connectors: dict[str, ConnectorSettings] = Field(
        default_factory=_section("connectors"), description="Adapters by name."
    )
    triggers: dict[str, TriggerSettings] = Field(
        default_factory=_section("triggers"), description="Event name to ordered steps."
    )
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    keepalive: KeepaliveSettings = Field(default_factory=KeepaliveSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    tls: TlsSettings = Field(default_factory=TlsSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    inbound: InboundSettings = Field(default_factory=InboundSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init kwargs; the environment must win over them.
        return (env_settings, init_settings)

    @field_validator("listen")
    @classmethod
    def _listen_has_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must be host:port, e.g. localhost:50051 or [::]:50051")
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


class SettingsError(Exception):
    """The configuration is invalid; the message says where and why."""


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Build settings from an optional TOML file plus the environment.

    Raises:
        SettingsError: with one line per problem, naming the key.
    """
    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(path.read_text("utf-8"))
        except OSError as exc:
            raise SettingsError(f"cannot read config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise SettingsError(format_validation_error(exc, path)) from exc


def format_validation_error(exc: ValidationError, path: Path | None) -> str:
    """One readable line per problem: `key.path: message`."""
    where = f" in {path}" if path else ""
    lines = [f"invalid configuration{where}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        lines.append(f"  {loc}: {err['msg']}")
    return "\n".join(lines)


def settings_for_tests(db_path: Path, **overrides: Any) -> Settings:
    """Settings with a private database and an ephemeral port, for tests and tools.

    Authentication and the per-caller rate limit are off unless `auth` or `limits` is
    overridden: most tests exercise behaviour from one caller, and the security tests turn
    them on explicitly.
    """
    base: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "database": {**_DEFAULTS["database"]},
        "auth": {"enabled": False},
        "limits": {"rate_per_s": 0},
        # Every test stops its servers; the drain tests set their own period.
        "drain_period_s": 0,
    }
    base["database"]["path"] = str(db_path)
    base.update(overrides)
    return Settings(**base)


def defaults() -> Mapping[str, Any]:
    """The parsed built-in defaults (read-only use)."""
    return _DEFAULTS
