"""A built server and its lifecycle: `start`, then one graceful `stop` that closes everything.

`build_app` (in `build.py`) opens the resources in order and hands the `App` an
`AsyncExitStack` holding their closers. `stop` first ends the serving side gracefully (health
NOT_SERVING for the drain period, then new calls refused and in-flight ones given the grace
period, then deliveries), and then unwinds that stack: connectors, cache, telemetry and the
store each close even when one before them fails, and every failure is logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from switchboard.server.api.connect import ConnectServer
from switchboard.server.api.health import SERVING, HealthService
from switchboard.server.api.webhooks import InboundServer
from switchboard.server.cache.read_cache import ReadCache
from switchboard.server.common.scopes import API_MODULES
from switchboard.server.config.settings import Settings
from switchboard.server.connectors.base import Connector
from switchboard.server.dispatch.worker import Dispatcher
from switchboard.server.domain.audience import AudienceTask
from switchboard.server.interceptors.ratelimit import CallerRates
from switchboard.server.observability.loop_lag import LoopLagMonitor
from switchboard.server.observability.telemetry import Telemetry
from switchboard.server.store.retention import RetentionTask
from switchboard.server.store.select import AnyStore

log = logging.getLogger(__name__)

SERVICE_NAMES: tuple[str, ...] = tuple(
    service.full_name
    for module in API_MODULES
    for service in module.DESCRIPTOR.services_by_name.values()
)


@dataclass(kw_only=True)
class App:
    """A built, bound, not-yet-started server and everything it owns."""

    settings: Settings
    server: grpc.aio.Server
    port: int
    store: AnyStore
    cache: ReadCache
    connectors: dict[str, Connector]
    dispatcher: Dispatcher
    health: HealthService
    telemetry: Telemetry
    retention: RetentionTask
    audience: AudienceTask | None = None  # walks audience campaigns' members
    inbound: InboundServer | None = None
    connect: ConnectServer | None = None
    #: The per-caller rates in force; `reload` swaps them.
    caller_rates: CallerRates | None = None
    loop_lag: LoopLagMonitor | None = None
    #: The closers of what `build_app` opened (store, cache, connectors, telemetry), run last.
    resources: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    async def start(self) -> None:
        """Start serving and delivering; mark every service SERVING."""
        await self.server.start()
        self.cache.watch_siblings()
        if self.inbound is not None:
            await self.inbound.start()
        if self.connect is not None:
            await self.connect.start()
        role = self.settings.role
        if role != "api":  # an api process leaves delivery to the dispatch processes
            self.dispatcher.start()
            self.retention.start()
            if self.audience is not None:  # campaigns start runs: background work too
                self.audience.start()
        if self.loop_lag is not None:
            self.loop_lag.start()
        # What start-up made (modules, settings, protobuf descriptors, the app) lives as long
        # as the process: frozen, full collections stop walking it on every pass. Collected
        # first, so that no start-up garbage is frozen with it (frozen objects are never
        # collected; a test process starts many apps).
        gc.collect()
        gc.freeze()
        for name in ("", *(SERVICE_NAMES if role != "dispatch" else ())):
            await self.health.set(name, SERVING)
        log.info(
            "%s on port %d (tls %s, auth %s, telemetry %s)",
            {"all": "serving", "api": "serving (no delivery)", "dispatch": "delivering"}[role],
            self.port,
            "on" if self.settings.tls.enabled else "off",
            "on" if self.settings.auth.enabled else "off",
            self.settings.telemetry.exporter,
        )
        auth = self.settings.auth
        if auth.enabled and not auth.callers and not auth.jwt.enabled:
            log.warning(
                "auth is on but no API-key caller or JWKS is configured: every call to a "
                "Switchboard service will be refused (see auth.callers, auth.jwt)"
            )

    def reload(self, settings: Settings) -> None:
        """Take what may change while serving from `settings`: the per-caller rate limits."""
        if self.caller_rates is not None:
            self.caller_rates.update(settings.limits)
        callers = ", ".join(
            f"{name} {limit.rate_per_s:g}/s" for name, limit in settings.limits.callers.items()
        )
        log.info(
            "reloaded rate limits: %g calls/s per caller (burst %d)%s",
            settings.limits.rate_per_s,
            settings.limits.rate_burst,
            f"; own limits: {callers}" if callers else "",
        )

    async def stop(self, grace_s: float | None = None, drain_s: float | None = None) -> None:
        """Graceful stop: NOT_SERVING first, then drain calls, deliveries and the store.

        For `drain_s` (default `settings.drain_period_s`) every service answers NOT_SERVING
        while the port stays open and calls are still served, so that balancers watching
        health stop sending calls here before they would be refused. Then new calls are
        refused and in-flight ones get `grace_s` (default `settings.grace_period_s`).
        Every step runs even when an earlier one fails; failures are logged.
        """
        grace = self.settings.grace_period_s if grace_s is None else grace_s
        drain = self.settings.drain_period_s if drain_s is None else drain_s
        if not self.health.shutting_down:  # a second stop does not drain again
            await self.health.enter_graceful_shutdown()
            if drain > 0:
                log.info("draining: health NOT_SERVING for %gs before refusing calls", drain)
                await asyncio.sleep(drain)
        self.health.close()  # ends Watch streams, which would otherwise hold up the stop
        if self.inbound is not None:
            await _logged("the inbound webhook endpoint", self.inbound.stop)
        if self.connect is not None:
            await _logged("the Connect endpoint", self.connect.stop)
        await _logged("the gRPC server", lambda: self.server.stop(grace))
        if self.audience is not None:
            await _logged("the audience campaigns", self.audience.stop)
        await _logged("the dispatcher", lambda: self.dispatcher.stop(grace))
        await _logged("the retention task", self.retention.stop)
        if self.loop_lag is not None:
            await _logged("the loop lag monitor", self.loop_lag.aclose)
        await self.resources.aclose()


async def _logged(what: str, step: Callable[[], Awaitable[object]]) -> None:
    """Run one stop step; a failure is logged and the stop goes on."""
    try:
        await step()
    except Exception:
        log.exception("stopping %s failed", what)


def closing(
    stack: contextlib.AsyncExitStack, what: str, close: Callable[[], Awaitable[object]]
) -> None:
    """Register `close` on `stack` so that a failure is logged and the other closers still run."""
    stack.push_async_callback(_logged, what, close)
