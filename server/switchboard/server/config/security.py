"""Settings for limits, keepalive, auth, TLS and page tokens (part of `config.Settings`)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from switchboard.server.common.scopes import ALL_SCOPES
from switchboard.server.config.base import FrozenModel

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class CallerLimit(FrozenModel):
    """One caller's own rate limit, in place of `limits.rate_per_s` / `rate_burst`."""

    rate_per_s: float = Field(ge=0, description="Calls per second (0: unlimited).")
    rate_burst: int | None = Field(
        default=None, ge=1, description="Bucket size (default: twice the rate, at least 1)."
    )

    @property
    def burst(self) -> int:
        """The bucket size in effect."""
        return self.rate_burst if self.rate_burst is not None else max(1, int(self.rate_per_s * 2))


class LimitsSettings(FrozenModel):
    """What abuse gets: size, concurrency and rate limits."""

    max_receive_message_bytes: int = Field(
        default=4194304,
        ge=1024,
        description="Largest request message accepted; larger gets RESOURCE_EXHAUSTED.",
    )
    max_send_message_bytes: int = Field(
        default=4194304,
        ge=1024,
        description="Largest response message sent; larger fails with RESOURCE_EXHAUSTED.",
    )
    max_concurrent_rpcs: int = Field(
        default=256,
        ge=1,
        description="Calls handled at once; more get RESOURCE_EXHAUSTED at once (no queue).",
    )
    import_backlog_s: float = Field(
        default=5.0,
        ge=0,
        description="An ImportContacts call that starts while this process's bulk writes "
        "are this far behind (or further than its deadline allows) gets RESOURCE_EXHAUSTED "
        "with a retry delay before it writes a row, instead of queueing past its deadline; "
        "0 disables (docs/performance.md#overload-imports-refused-early).",
    )
    rate_per_s: float = Field(
        default=100.0,
        ge=0,
        description="Calls per second per caller (token bucket refill); 0 disables.",
    )
    rate_burst: int = Field(default=200, ge=1, description="Token bucket size per caller.")
    callers: dict[str, CallerLimit] = Field(
        default_factory=dict,
        description="Per-caller rates by caller name (API-key caller or JWT client); "
        "reloaded on SIGHUP (docs/security.md#per-caller-rate-limits).",
    )
    backend: Literal["auto", "local", "redis"] = Field(
        default="auto",
        description="Where per-caller buckets live: local (each process its own), redis "
        "(shared by every process and replica), auto: redis when connector_limits uses it.",
    )
    max_tracked_callers: int = Field(
        default=10000,
        ge=1,
        description="Rate buckets kept; the least recently seen caller is forgotten first.",
    )


class KeepaliveSettings(FrozenModel):
    """HTTP/2 keepalive and ping policy (grpc core channel arguments)."""

    time_ms: int = Field(default=300000, ge=1000, description="Server pings after idle.")
    timeout_ms: int = Field(
        default=20000,
        ge=100,
        description="A ping unanswered this long closes the connection.",
    )
    permit_without_calls: bool = Field(
        default=True,
        description="Allow client pings on connections with no call in flight.",
    )
    min_ping_interval_ms: int = Field(
        default=10000,
        ge=0,
        description="Client pings closer together than this (without data) are strikes.",
    )
    max_ping_strikes: int = Field(
        default=2,
        ge=0,
        description="Strikes before the server closes the connection (GOAWAY); 0: unlimited.",
    )
    max_connection_idle_ms: int = Field(
        default=0,
        ge=0,
        description="Close connections idle this long; 0 never.",
    )
    max_connection_age_ms: int = Field(
        default=0,
        ge=0,
        description="Ask clients to reconnect (GOAWAY) after a connection is this old, so "
        "that long-lived clients spread again over workers and replicas; 0 never "
        "(docs/scaling.md#balancing-connections).",
    )
    max_connection_age_grace_ms: int = Field(
        default=30000,
        ge=0,
        description="After that GOAWAY, how long calls in flight on the old connection may "
        "finish before it is closed.",
    )


class CallerSettings(FrozenModel):
    """One API-key caller: its scopes and the SHA-256 (hex) of each of its keys."""

    scopes: list[str] = Field(description="Scopes granted, e.g. contacts:read.")
    key_sha256: list[str] = Field(
        min_length=1, description="Hex SHA-256 of each valid key; several allow rotation."
    )

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - ALL_SCOPES)
        if unknown:
            raise ValueError(f"unknown scopes {unknown} (known: {sorted(ALL_SCOPES)})")
        return value

    @field_validator("key_sha256")
    @classmethod
    def _hex_digests(cls, value: list[str]) -> list[str]:
        for digest in value:
            if not _SHA256_HEX.match(digest):
                raise ValueError("each key_sha256 must be 64 lower-case hex characters")
        return value


class JwtSettings(FrozenModel):
    """OAuth 2.0 access tokens (JWT): accepted when a JWKS file or URL is set."""

    issuer: str = Field(default="", description="Required `iss`.")
    audience: str = Field(default="", description="Required `aud`.")
    algorithms: list[str] = Field(default=["RS256"], min_length=1, description="Pinned algorithms.")
    jwks_file: str = Field(default="", description="JWKS JSON file.")
    jwks_url: str = Field(default="", description="JWKS URL.")
    leeway_s: float = Field(default=30.0, ge=0, le=300, description="Clock skew allowed.")
    scope_claim: str = Field(default="scope", description="Claim with space-separated scopes.")

    @property
    def enabled(self) -> bool:
        """JWTs are accepted only with a key source."""
        return bool(self.jwks_file or self.jwks_url)

    @field_validator("algorithms")
    @classmethod
    def _no_none(cls, value: list[str]) -> list[str]:
        if any(a.lower() == "none" for a in value):
            raise ValueError("'none' is never an accepted algorithm")
        if any(a.startswith("HS") for a in value):
            raise ValueError("only asymmetric algorithms (RS*, PS*, ES*, EdDSA) with a JWKS")
        return value

    @model_validator(mode="after")
    def _issuer_and_audience(self) -> JwtSettings:
        if self.enabled and not (self.issuer and self.audience):
            raise ValueError("issuer and audience are required when JWTs are accepted")
        return self


class AuthSettings(FrozenModel):
    """Who gets in: API keys and JWT bearer tokens."""

    enabled: bool = Field(default=True, description="Require credentials on every RPC.")
    open_services: list[str] = Field(
        default=[
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ],
        description="Services callable without credentials (health, reflection).",
    )
    callers: dict[str, CallerSettings] = Field(default={}, description="API-key callers by name.")
    jwt: JwtSettings = Field(default_factory=JwtSettings)


class TlsSettings(FrozenModel):
    """TLS (and mutual TLS) on the gRPC port; off while `cert_file` is empty."""

    cert_file: str = Field(default="", description="PEM certificate chain.")
    key_file: str = Field(default="", description="PEM private key.")
    client_ca_file: str = Field(default="", description="PEM CA bundle for client certificates.")
    require_client_cert: bool = Field(
        default=False, description="Mutual TLS: refuse clients without."
    )

    @property
    def enabled(self) -> bool:
        """TLS is on when a certificate is configured."""
        return bool(self.cert_file)

    @model_validator(mode="after")
    def _complete(self) -> TlsSettings:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("set both cert_file and key_file, or neither")
        if self.require_client_cert and not self.client_ca_file:
            raise ValueError("require_client_cert needs client_ca_file")
        if self.client_ca_file and not self.cert_file:
            raise ValueError("client_ca_file needs cert_file and key_file")
        return self


# HMAC-SHA256 takes any key length, but fewer than 32 bytes would be weaker than the MAC.
MIN_PAGE_TOKEN_KEY_BYTES = 32


def resolve_secret(reference: str, environ: Mapping[str, str] | None = None) -> bytes:
    """The secret a setting names: `env:NAME` (a variable), `file:PATH` (a file) or itself.

    Surrounding whitespace (a file's last newline) is dropped.

    Raises:
        ValueError: naming the variable or file that is missing, never echoing a secret.
    """
    if reference.startswith("env:"):
        name = reference.removeprefix("env:")
        value = (os.environ if environ is None else environ).get(name)
        if value is None:
            raise ValueError(f"environment variable {name!r} is not set")
        return value.strip().encode()
    if reference.startswith("file:"):
        path = Path(reference.removeprefix("file:"))
        try:
            return path.read_bytes().strip()
        except OSError as exc:
            raise ValueError(f"cannot read {str(path)!r}: {exc.strerror}") from exc
    return reference.strip().encode()


class PageTokenSettings(FrozenModel):
    """The keys that sign page tokens, so a token cannot be forged or re-aimed."""

    keys: list[str] = Field(
        default_factory=list,
        description="HMAC keys as `env:NAME`, `file:PATH` or the key itself (at least "
        f"{MIN_PAGE_TOKEN_KEY_BYTES} bytes); the first signs, all verify (rotation). Empty: a "
        "key generated once per database and stored in it.",
    )

    def signing_keys(self, environ: Mapping[str, str] | None = None) -> list[bytes]:
        """The configured keys, resolved; empty when the database's own key is to be used.

        Raises:
            ValueError: a reference cannot be resolved or a key is too short.
        """
        resolved = []
        for i, reference in enumerate(self.keys):
            try:
                key = resolve_secret(reference, environ)
            except ValueError as exc:
                raise ValueError(f"page_tokens.keys[{i}]: {exc}") from exc
            if len(key) < MIN_PAGE_TOKEN_KEY_BYTES:
                raise ValueError(
                    f"page_tokens.keys[{i}]: a key needs at least {MIN_PAGE_TOKEN_KEY_BYTES} "
                    "bytes (e.g. `openssl rand -base64 32`)"
                )
            resolved.append(key)
        return resolved
