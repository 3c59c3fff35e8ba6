"""Channel construction: service config (retries), channel options and credentials."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

__all__ = [
    "MAX_RETRIES",
    "SERVICES",
    "ChannelOptions",
    "TLSConfig",
    "call_metadata",
    "channel_options",
    "open_channel",
    "resolve_tls",
    "service_config",
]

#: Every Switchboard service; the retry policy applies to all of them.
SERVICES = (
    "switchboard.v1.ContactSync",
    "switchboard.v1.LeadScoring",
    "switchboard.v1.CampaignTriggers",
    "switchboard.v1.Connectors",
)

#: gRPC caps a retry policy at 5 attempts, so at most 4 retries.
MAX_RETRIES = 4

ChannelOptions = Sequence[tuple[str, Any]]


@dataclass(frozen=True, slots=True)
class TLSConfig:
    """How the client verifies the server, and proves itself for mutual TLS.

    `TLSConfig()` trusts the system's root certificates. Pass it as `tls=` (or `tls=True`
    for the defaults).

    Args:
        root_certificates: PEM root certificates to verify the server with, instead of the
            system's.
        client_cert_chain: PEM certificate chain for mutual TLS (with `client_private_key`).
        client_private_key: PEM private key for mutual TLS.
    """

    root_certificates: bytes | None = None
    client_cert_chain: bytes | None = None
    client_private_key: bytes | None = None

    def __post_init__(self) -> None:
        if (self.client_cert_chain is None) != (self.client_private_key is None):
            raise ValueError("client_cert_chain and client_private_key go together")

    @classmethod
    def from_files(
        cls,
        root_certificates: str | Path | None = None,
        *,
        client_cert_chain: str | Path | None = None,
        client_private_key: str | Path | None = None,
    ) -> TLSConfig:
        """A `TLSConfig` read from PEM files; `None` keeps a default."""
        return cls(
            root_certificates=_read(root_certificates),
            client_cert_chain=_read(client_cert_chain),
            client_private_key=_read(client_private_key),
        )

    def credentials(self) -> grpc.ChannelCredentials:
        """The gRPC channel credentials for this configuration."""
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.client_private_key,
            certificate_chain=self.client_cert_chain,
        )


def _read(path: str | Path | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


def resolve_tls(
    tls: bool | TLSConfig,
    root_certificates: bytes | None = None,
    client_cert_chain: bytes | None = None,
    client_private_key: bytes | None = None,
) -> TLSConfig | None:
    """The TLS configuration from `tls=` and the older certificate keyword arguments.

    The keyword arguments still work (with a DeprecationWarning) when `tls` is `True`.
    """
    legacy = (root_certificates, client_cert_chain, client_private_key)
    if all(value is None for value in legacy):
        if isinstance(tls, TLSConfig):
            return tls
        return TLSConfig() if tls else None
    if tls is not True:
        raise ValueError("certificates were given but tls=False; pass tls=TLSConfig(...)")
    warnings.warn(
        "root_certificates=, client_cert_chain= and client_private_key= are deprecated; "
        "pass tls=TLSConfig(...) instead",
        DeprecationWarning,
        stacklevel=3,
    )
    return TLSConfig(*legacy)


def service_config(retries: int) -> dict[str, Any]:
    """Returns the gRPC service config that retries UNAVAILABLE calls `retries` times.

    Only UNAVAILABLE is retried: it means the call did not take effect (or, for writes, that
    the idempotency key makes a repeat harmless). Other codes are answers, not accidents.
    """
    if not 0 <= retries <= MAX_RETRIES:
        raise ValueError(f"retries must be between 0 and {MAX_RETRIES}, got {retries}")
    method_config: dict[str, Any] = {
        "name": [{"service": service} for service in SERVICES],
        # Fail fast while the server is down instead of queueing until the deadline.
        "waitForReady": False,
    }
    if retries:
        method_config["retryPolicy"] = {
            "maxAttempts": retries + 1,
            "initialBackoff": "0.1s",
            "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    return {"methodConfig": [method_config]}


def channel_options(retries: int, extra: ChannelOptions = ()) -> list[tuple[str, Any]]:
    """Returns the options for a channel with the retry policy, followed by `extra`."""
    return [
        ("grpc.service_config", json.dumps(service_config(retries))),
        ("grpc.enable_retries", 1),
        *extra,
    ]


def open_channel(
    target: str,
    *,
    retries: int,
    options: ChannelOptions = (),
    tls: TLSConfig | None = None,
) -> grpc.aio.Channel:
    """Opens a `grpc.aio` channel to `target`: TLS when `tls` is given, plaintext otherwise."""
    all_options = channel_options(retries, options)
    if tls is None:
        return grpc.aio.insecure_channel(target, options=all_options)
    return grpc.aio.secure_channel(target, tls.credentials(), options=all_options)


def call_metadata(
    api_key: str | None, metadata: Mapping[str, str] | Sequence[tuple[str, str]] | None
) -> tuple[tuple[str, str], ...]:
    """Returns the metadata sent with every call: the API key first, then `metadata`."""
    pairs: list[tuple[str, str]] = []
    if api_key is not None:
        pairs.append(("authorization", f"Bearer {api_key}"))
    if metadata is not None:
        items = metadata.items() if isinstance(metadata, Mapping) else metadata
        # gRPC requires lower-case keys; accept `X-Tenant` as users tend to write it.
        pairs.extend((key.lower(), value) for key, value in items)
    return tuple(pairs)
