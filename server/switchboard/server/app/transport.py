"""gRPC core options (message sizes, keepalive) and the listening port (plaintext or TLS)."""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from switchboard.server.config.security import TlsSettings
from switchboard.server.config.settings import Settings


def server_options(settings: Settings) -> list[tuple[str, int]]:
    """Channel arguments for `grpc.aio.server`, from `limits` and `keepalive`."""
    limits, ka = settings.limits, settings.keepalive
    options = [
        ("grpc.max_receive_message_length", limits.max_receive_message_bytes),
        ("grpc.max_send_message_length", limits.max_send_message_bytes),
        ("grpc.keepalive_time_ms", ka.time_ms),
        ("grpc.keepalive_timeout_ms", ka.timeout_ms),
        ("grpc.keepalive_permit_without_calls", int(ka.permit_without_calls)),
        ("grpc.http2.min_ping_interval_without_data_ms", ka.min_ping_interval_ms),
        ("grpc.http2.max_ping_strikes", ka.max_ping_strikes),
    ]
    if ka.max_connection_idle_ms:
        options.append(("grpc.max_connection_idle_ms", ka.max_connection_idle_ms))
    return options


def server_credentials(tls: TlsSettings) -> grpc.ServerCredentials:
    """TLS credentials; with `client_ca_file`, client certificates are checked against it."""
    key = Path(tls.key_file).read_bytes()
    chain = Path(tls.cert_file).read_bytes()
    client_ca = Path(tls.client_ca_file).read_bytes() if tls.client_ca_file else None
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=client_ca,
        require_client_auth=tls.require_client_cert,
    )


def ssl_context(tls: TlsSettings) -> ssl.SSLContext:
    """The same certificate, key and client CA as the gRPC port, for the HTTP (webhook) port."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.client_ca_file:
        context.load_verify_locations(tls.client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED if tls.require_client_cert else ssl.CERT_OPTIONAL
    return context


def add_port(server: grpc.aio.Server, settings: Settings) -> int:
    """Bind `settings.listen`, with TLS when configured; returns the bound port."""
    if settings.tls.enabled:
        return server.add_secure_port(settings.listen, server_credentials(settings.tls))
    return server.add_insecure_port(settings.listen)
