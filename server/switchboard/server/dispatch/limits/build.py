"""Choose and build the limits backend from the settings."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Mapping

from switchboard.server.config.flow import ConnectorSettings
from switchboard.server.config.sections import DispatchSettings
from switchboard.server.config.settings import Settings
from switchboard.server.dispatch.guard import ConnectorGuard
from switchboard.server.dispatch.limits.base import Lane, Limits, LimitSpec
from switchboard.server.dispatch.limits.local import LocalLimits
from switchboard.server.runs.backfill import BACKFILL_EVENT
from switchboard.server.runs.backfill_history import HISTORY_EVENT
from switchboard.server.store.base import OutboxItem, Store

log = logging.getLogger(__name__)


def specs_from(
    connectors: Mapping[str, ConnectorSettings], dispatch: DispatchSettings, share: float
) -> dict[str, LimitSpec]:
    """Each connector's limits; unset settings take the dispatch defaults (as the guards)."""
    specs: dict[str, LimitSpec] = {}
    for name, c in connectors.items():
        specs[name] = LimitSpec(
            rate_per_s=c.rate_per_s,
            burst=c.rate_burst,
            max_concurrency=c.max_concurrency or dispatch.connector_concurrency,
            breaker_failures=c.breaker_failures or dispatch.breaker_failures,
            breaker_cooldown_s=c.breaker_cooldown_s or dispatch.breaker_cooldown_s,
            daily_quota=c.daily_quota,
            interactive_share=share,
        )
    return specs


def backend_name(settings: Settings, several_workers: bool) -> str:
    """What `connector_limits.backend = auto` resolves to."""
    chosen = settings.connector_limits.backend
    if chosen != "auto":
        return chosen
    if redis_url(settings):
        return "redis"
    return "store" if several_workers else "local"


def redis_url(settings: Settings) -> str:
    """The limits' own Redis URL, else the cache's when the cache is in Redis."""
    own = settings.connector_limits.redis_url
    if own:
        return own
    return settings.cache.redis_url if settings.cache.backend == "redis" else ""


def lane_rule(settings: Settings) -> LaneRule:
    """The lane of an outbox step: bulk for the configured bulk events and backfills."""
    bulk = frozenset(settings.connector_limits.bulk_events)
    return LaneRule(bulk | {BACKFILL_EVENT, HISTORY_EVENT})


class LaneRule:
    """Steps of runs started by a bulk event use the bulk lane; everything else interactive."""

    def __init__(self, bulk_events: frozenset[str]) -> None:
        self._bulk = bulk_events

    def __call__(self, item: OutboxItem) -> Lane:
        """The item's lane."""
        return "bulk" if item.plan.base.get("event") in self._bulk else "interactive"


async def build_limits(
    settings: Settings,
    guards: Mapping[str, ConnectorGuard],
    store: Store,
    several_workers: bool,
) -> Limits:
    """The configured backend (with local limits as Redis's fallback)."""
    limits = settings.connector_limits
    specs = specs_from(settings.connectors, settings.dispatch, limits.interactive_share)
    local = LocalLimits(guards, specs)
    which = backend_name(settings, several_workers)
    holder = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    lease = settings.dispatch.lease_s
    # Claim the tokens due before the next poll (they wait for their time): the rate is
    # then reached, not just not exceeded, by processes that do not wake each other.
    lookahead = settings.dispatch.poll_interval_s
    if which == "store":
        from switchboard.server.dispatch.limits.store import StoreLimits

        return StoreLimits(store, specs, holder, lease, lookahead_s=lookahead)
    if which == "redis":
        from redis.exceptions import RedisError

        from switchboard.server.dispatch.limits.degrade import Degrading
        from switchboard.server.dispatch.limits.redis import RedisLimits, client_for

        namespace = settings.cache.namespace
        client = client_for(redis_url(settings), limits.redis_timeout_s)
        shared = RedisLimits(
            client, specs, holder, lease, namespace, time.monotonic, lookahead_s=lookahead
        )
        errors = (RedisError, OSError, TimeoutError)
        degrading = Degrading(shared, local, errors, limits.redis_retry_s)
        try:
            await shared.sync_clock()
        except errors as exc:
            degrading.lost(exc)  # serve anyway, on local limits until Redis answers
        return degrading
    return local
