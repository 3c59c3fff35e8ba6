"""Channel construction: service config (retries), channel options and credentials."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import grpc

__all__ = [
    "MAX_RETRIES",
    "SERVICES",
    "ChannelOptions",
    "call_metadata",
    "channel_options",
    "open_channel",
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
    tls: bool = False,
    root_certificates: bytes | None = None,
    client_cert_chain: bytes | None = None,
    client_private_key: bytes | None = None,
) -> grpc.aio.Channel:
    """Opens a `grpc.aio` channel to `target`: TLS when asked for, plaintext otherwise."""
    all_options = channel_options(retries, options)
    uses_certificates = any(
        value is not None for value in (root_certificates, client_cert_chain, client_private_key)
    )
    if uses_certificates and not tls:
        raise ValueError("certificates were given but tls=False")
    if not tls:
        return grpc.aio.insecure_channel(target, options=all_options)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root_certificates,
        private_key=client_private_key,
        certificate_chain=client_cert_chain,
    )
    return grpc.aio.secure_channel(target, credentials, options=all_options)


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
