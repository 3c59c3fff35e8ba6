"""Connection ageing, so that long-lived clients spread again over workers and replicas.

A gRPC client keeps one HTTP/2 connection for its lifetime, and `SO_REUSEPORT` (or a
layer-4 balancer) picks a worker once per connection: 8 long-lived clients on 2 workers
stay in whatever split the hash gave them (see docs/scaling.md#balancing-connections).
With `keepalive.max_connection_age_ms`, the server sends GOAWAY to a connection of that
age; the client finishes its calls in flight (within the grace), reconnects, and the new
connection is placed afresh, so the load per worker evens out over a few ages.
"""

from __future__ import annotations

from switchboard.server.config.settings import Settings


def rebalance_options(settings: Settings) -> list[tuple[str, int]]:
    """gRPC core channel arguments for connection ageing (none when it is off)."""
    keepalive = settings.keepalive
    if not keepalive.max_connection_age_ms:
        return []
    return [
        ("grpc.max_connection_age_ms", keepalive.max_connection_age_ms),
        ("grpc.max_connection_age_grace_ms", keepalive.max_connection_age_grace_ms),
    ]
