"""The per-caller rate limit's guard, in this process or in Redis (`limits.backend`)."""

from __future__ import annotations

import contextlib

from switchboard.server.app.app import closing
from switchboard.server.config.settings import Settings
from switchboard.server.dispatch.limits.build import backend_name, redis_url
from switchboard.server.interceptors.chain import Guard
from switchboard.server.interceptors.ratelimit import CallerRates, RateLimitGuard, TokenBuckets

_EXEMPT = ("grpc.health.v1.Health",)
_REDIS_TIMEOUT_S = 0.5


class StartupProblem(ValueError):
    """The caller limits cannot be set up as configured."""


def rate_guard(
    settings: Settings, rates: CallerRates, several_workers: bool, stack: contextlib.AsyncExitStack
) -> Guard | None:
    """The guard spending callers' tokens, or None when no caller is limited at all."""
    limits = settings.limits
    if limits.rate_per_s <= 0 and not limits.callers:
        return None
    buckets = TokenBuckets(limits.rate_per_s, limits.rate_burst, limits.max_tracked_callers)
    backend = limits.backend
    if backend == "auto":
        backend = "redis" if backend_name(settings, several_workers) == "redis" else "local"
    if backend == "local":
        return RateLimitGuard(buckets, _EXEMPT, rates)
    url = redis_url(settings)
    if not url:
        raise StartupProblem(
            "limits.backend = redis needs a Redis URL: set connector_limits.redis_url, or "
            "cache.backend = redis with cache.redis_url"
        )
    from switchboard.server.dispatch.limits.redis import client_for
    from switchboard.server.interceptors.ratelimit_redis import RedisRateLimitGuard

    client = client_for(url, _REDIS_TIMEOUT_S)
    prefix = f"{settings.cache.namespace}:caller-rate:"
    guard = RedisRateLimitGuard(client, rates, buckets, _EXEMPT, prefix)
    closing(stack, "the caller rate limit's Redis client", guard.aclose)
    return guard
