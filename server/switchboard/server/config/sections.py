"""The sections of the settings that configure the server's own machinery: the Connect
endpoint, the store, the read cache, shared connector limits, the dispatcher and the scoring
rules. `settings.py` assembles them (with flow, security, sync and telemetry) into `Settings`.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from switchboard.server.config.base import FrozenModel
from switchboard.server.config.defaults import (
    ACTIVITY_POINTS,
    PROFILE_POINTS,
    STATUS_POINTS,
    TITLE_KEYWORDS,
)

#: Where `serve --local` serves the Connect protocol when `connect.listen` is empty.
LOCAL_CONNECT_LISTEN = "localhost:50052"


def check_listen(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("must be host:port, e.g. localhost:50051 or [::]:50051")
    return value


class ConnectSettings(FrozenModel):
    """The Connect protocol endpoint (HTTP/1.1, same process, its own port)."""

    listen: str = Field(
        default="",
        description="host:port for the Connect protocol (JSON or binary protobuf over HTTP); "
        f"empty: off (`serve --local` then uses {LOCAL_CONNECT_LISTEN}).",
    )

    @field_validator("listen")
    @classmethod
    def _listen_has_port(cls, value: str) -> str:
        return check_listen(value) if value else value


class DatabaseSettings(FrozenModel):
    """The store: an SQLite file (the default), or PostgreSQL when `url` is set."""

    url: str = Field(
        default="",
        description="`postgresql://[user@]host[:port]/dbname[?options]`: use the PostgreSQL "
        "store (docs/postgresql.md). Empty: the SQLite file at `path`.",
    )
    password: str = Field(
        default="",
        description="PostgreSQL password as `env:NAME` or `file:PATH` (or the password "
        "itself); empty: the URL's own password, or libpq's `PGPASSFILE` / `~/.pgpass`.",
    )
    pool_min: int = Field(default=2, ge=0, le=256, description="PostgreSQL connections kept open.")
    pool_max: int = Field(
        default=10,
        ge=1,
        le=256,
        description="Most PostgreSQL connections (each transaction holds one, on its own "
        "thread, for its duration).",
    )
    write_connections: int = Field(
        default=2,
        ge=1,
        le=256,
        description="PostgreSQL: most write transactions one process runs at once (the "
        "rest of `pool_max` serve reads). Writes run SERIALIZABLE, so more of them at once "
        "mostly adds conflicts and re-runs; reads never queue behind writes.",
    )
    pool_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="How long a transaction waits for a free PostgreSQL connection before "
        "the call fails with UNAVAILABLE.",
    )
    migrate_on_start: bool = Field(
        default=True,
        description="Apply pending PostgreSQL schema migrations at start-up; false: refuse "
        "to start until `switchboard db upgrade` has run.",
    )
    path: str = Field(
        default="data/switchboard.db",
        description="SQLite file; `:memory:` is not supported (use a temp file).",
    )
    busy_timeout_ms: int = Field(
        default=5000,
        ge=0,
        description="How long a writer waits for a lock.",
    )
    checkpoint_interval_s: float = Field(
        default=0.2,
        ge=0,
        description="SQLite: seconds between WAL checkpoints run by a background thread, "
        "off the write path (PASSIVE: never waits for writers; the commit that fills the log "
        "past 4000 pages still checkpoints, as a safety net); 0: SQLite's automatic "
        "checkpoint inside the commit that fills the log past 1000 pages.",
    )
    writer_stats_s: float = Field(
        default=0.0,
        ge=0,
        description="SQLite: every this many seconds each worker logs (WARNING, `store writer "
        "stats`) where its writes' time went: queued behind its own batches, waiting for the "
        "write lock (other workers), in the transaction, in the COMMIT; p50/p99/max per kind "
        "(interactive, bulk). 0: off. A diagnostic for latency work (the soak case turns it on).",
    )
    readers: int = Field(
        default=2,
        ge=1,
        le=32,
        description="Read connections (threads).",
    )
    inline_point_reads: bool = Field(
        default=True,
        description="Run small indexed lookups on the event loop instead of a reader thread "
        "(faster; turn off if the disk is slow enough to stall the loop).",
    )

    @field_validator("url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("must look like postgresql://user@host:5432/dbname (or be empty)")
        try:
            parts.port  # noqa: B018 - raises ValueError when the port is not a number
        except ValueError as exc:
            raise ValueError(f"bad port: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _pool_bounds(self) -> DatabaseSettings:
        if self.pool_min > self.pool_max:
            raise ValueError("pool_min must not exceed pool_max")
        return self


class CacheSettings(FrozenModel):
    """Read cache for contacts (aiocache): in process memory, or shared in Redis."""

    backend: Literal["memory", "redis"] = Field(
        default="memory",
        description="`memory`: one cache per process; `redis`: one cache shared by every "
        "worker and replica (needs the `redis` extra).",
    )
    ttl_s: float = Field(default=60.0, gt=0, description="Seconds an entry lives.")
    max_entries: int = Field(
        default=10000,
        ge=0,
        description="Upper bound on entries in memory (Redis is bounded by its own "
        "`maxmemory`); 0 disables the cache with either backend.",
    )
    invalidation_hold_s: float = Field(
        default=1.0,
        gt=0,
        description="After a write, its keys refuse new entries this long (at most `ttl_s`), "
        "so a read that fetched the old row just before the write cannot cache it after.",
    )
    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        description="`redis://[user:password@]host:port/db` (`rediss://` for TLS); "
        "used when `backend` is `redis`.",
    )
    redis_timeout_s: float = Field(
        default=0.5,
        gt=0,
        description="Connect and reply timeout for one Redis command; past it the "
        "lookup counts as a miss.",
    )
    namespace: str = Field(
        default="switchboard",
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


class ConnectorLimitsSettings(FrozenModel):
    """Where connectors' rate limits, slots, breakers and daily quotas live (docs:
    reliable-delivery.md, "Limits shared across workers and replicas")."""

    backend: Literal["auto", "local", "store", "redis"] = Field(
        default="auto",
        description="`local`: each process its own (N workers allow N times the limits); "
        "`store`: shared through the database; `redis`: shared through Redis, local "
        "while it is unreachable; `auto`: `redis` when a Redis URL is configured (here or "
        "`cache.backend = redis`), else `store` with several workers, else `local`.",
    )
    redis_url: str = Field(
        default="",
        description="`redis://host:port/db` for the shared limits; empty: the cache's "
        "`redis_url` when `cache.backend` is `redis`.",
    )
    redis_timeout_s: float = Field(
        default=0.25,
        gt=0,
        description="Connect and reply timeout for one Redis round trip; past it the "
        "process falls back to its own limits.",
    )
    redis_retry_s: float = Field(
        default=1.0,
        gt=0,
        description="While Redis is unreachable, how often to try it again.",
    )
    interactive_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="Share of each connector's `daily_quota` kept for interactive calls: "
        "bulk calls (events in `bulk_events`) stop when only this much is left.",
    )
    bulk_events: list[str] = Field(
        default_factory=lambda: ["contact.changed", "contact.erased"],
        description="Events whose steps use the bulk lane of the daily quota; all other "
        "steps and InvokeConnector calls are interactive.",
    )

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        return CacheSettings._redis_url(value) if value else value


class DispatchSettings(FrozenModel):
    """The outbox worker."""

    poll_interval_s: float = Field(
        default=0.5,
        gt=0,
        description="Idle poll period for new steps.",
    )
    batch_size: int = Field(
        default=32,
        ge=1,
        le=1000,
        description="Steps claimed per poll.",
    )
    lease_s: float = Field(
        default=30.0,
        gt=0,
        description="A claimed step is re-offered after this long.",
    )
    max_attempts: int = Field(
        default=5,
        ge=1,
        le=100,
        description="Default attempts per step.",
    )
    base_backoff_s: float = Field(
        default=0.2,
        ge=0,
        description="First retry delay (doubles each time).",
    )
    max_backoff_s: float = Field(default=30.0, ge=0, description="Retry delay cap.")
    concurrency: int = Field(
        default=64,
        ge=1,
        le=1000,
        description="Steps delivered at once, all connectors together.",
    )
    connector_concurrency: int = Field(
        default=8,
        ge=1,
        le=1000,
        description="Default steps in flight per connector (a slow one holds only these).",
    )
    max_retry_after_s: float = Field(
        default=300.0,
        ge=0,
        description="Longest Retry-After a tool may ask for; longer requests are capped.",
    )
    breaker_failures: int = Field(
        default=5,
        ge=1,
        description="Default consecutive failures that open a connector's circuit.",
    )
    breaker_cooldown_s: float = Field(
        default=30.0,
        gt=0,
        description="Default seconds an open circuit waits before one probe call.",
    )
    per_contact_ordering: bool = Field(
        default=True,
        description="Default: deliver a contact's steps for one connector one at a time, in order.",
    )
    batch_linger_ms: float = Field(
        default=10.0,
        ge=0,
        le=1000,
        description=(
            "How long a part-filled batch for a batch-capable connector waits for more "
            "steps before it is sent (0: send what one claim found)."
        ),
    )
    processes: int = Field(
        default=0,
        ge=0,
        le=64,
        description="With `serve --workers N`, this many of the N workers only deliver and "
        "the others only serve calls; 0: every worker does both.",
    )
    health_listen: str = Field(
        default="127.0.0.1:0",
        description="Where a dispatch worker of `serve --workers` answers gRPC health "
        "(port 0: any free port, logged).",
    )
    idempotency_retention_s: float = Field(
        default=172800.0,
        ge=86400,
        description="How long idempotency keys are kept (at least 24 hours).",
    )
    purge_interval_s: float = Field(
        default=600.0,
        gt=0,
        description="How often expired idempotency keys are purged.",
    )


class ScoringSettings(FrozenModel):
    """Lead scoring rules: configuration, not code."""

    half_life_days: float = Field(
        default=30.0,
        gt=0,
        description="Activity points halve after this many days.",
    )
    max_activities: int = Field(
        default=500,
        ge=1,
        description="Most recent activities considered.",
    )
    activity_points: dict[str, float] = Field(
        default_factory=lambda: dict(ACTIVITY_POINTS),
        description="Points per activity type (before decay).",
    )
    profile_points: dict[str, float] = Field(
        default_factory=lambda: dict(PROFILE_POINTS),
        description="Points when a profile field is filled in (consent: when opted in).",
    )
    title_keywords: dict[str, float] = Field(
        default_factory=lambda: dict(TITLE_KEYWORDS),
        description="Points for the best keyword found in the job title.",
    )
    status_points: dict[str, float] = Field(
        default_factory=lambda: dict(STATUS_POINTS),
        description="Points per lead status.",
    )
