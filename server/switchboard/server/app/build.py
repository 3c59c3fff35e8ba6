"""Builds the gRPC server from settings, apart from running it (see `serve`).

`build_app` wires store → cache → connectors → dispatcher → domain → servicers, adds health
and reflection, and binds the port without blocking. `App.stop` is the graceful path:
health NOT_SERVING while calls are still served for the drain period, then new calls are
refused, in-flight calls finish within the grace period, and everything closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from switchboard.server.api.campaigns import CampaignTriggersServicer
from switchboard.server.api.connect import ConnectServer, SwitchboardConnectApp, endpoints_for
from switchboard.server.api.connectors import ConnectorsServicer
from switchboard.server.api.contacts import ContactSyncServicer
from switchboard.server.api.decoding import add_servicer
from switchboard.server.api.health import SERVICE_NAME as HEALTH_SERVICE
from switchboard.server.api.health import SERVING, HealthService
from switchboard.server.api.leads import LeadScoringServicer
from switchboard.server.api.webhooks import InboundServer
from switchboard.server.app import reflection
from switchboard.server.app.gauges import register_gauges
from switchboard.server.app.transport import add_port, server_options, ssl_context
from switchboard.server.auth.authenticator import Authenticator
from switchboard.server.cache.backends import CacheBackendError
from switchboard.server.cache.read_cache import ContactCache
from switchboard.server.cache.siblings import Siblings
from switchboard.server.common.scopes import SCOPE_BY_METHOD
from switchboard.server.config.settings import Settings
from switchboard.server.connectors.base import Connector
from switchboard.server.connectors.registry import build_registry, check_steps
from switchboard.server.dispatch.attempts import AttemptTelemetry
from switchboard.server.dispatch.guard import build_guards
from switchboard.server.dispatch.limits.build import build_limits, lane_rule
from switchboard.server.dispatch.notify import RunNotifier
from switchboard.server.dispatch.run_metrics import RunMetrics
from switchboard.server.dispatch.worker import Dispatcher
from switchboard.server.domain.campaigns import CampaignService
from switchboard.server.domain.connectors import ConnectorService
from switchboard.server.domain.contacts import ContactService
from switchboard.server.domain.dead_letters import DeadLetterService
from switchboard.server.domain.leads import LeadService
from switchboard.server.domain.page_keys import load_page_tokens
from switchboard.server.interceptors.access_log import AccessLogGuard
from switchboard.server.interceptors.authn import AuthenticationGuard
from switchboard.server.interceptors.authz import AuthorizationGuard
from switchboard.server.interceptors.call_ids import CallIdGuard
from switchboard.server.interceptors.chain import Guard, GuardChain
from switchboard.server.interceptors.concurrency import ConcurrencyLimitGuard
from switchboard.server.interceptors.ratelimit import RateLimitGuard, TokenBuckets
from switchboard.server.interceptors.rpc_telemetry import RpcTelemetryGuard, ServerEndpoint
from switchboard.server.observability.telemetry import Telemetry, build_telemetry
from switchboard.server.rules.scoring import validate_rules
from switchboard.server.store.retention import RetentionTask
from switchboard.server.store.sqlite.store import SqliteStore
from switchboard.v1 import (
    campaigns_pb2,
    campaigns_pb2_grpc,
    connectors_pb2,
    connectors_pb2_grpc,
    contacts_pb2,
    contacts_pb2_grpc,
    leads_pb2,
    leads_pb2_grpc,
)

log = logging.getLogger(__name__)

SERVICE_NAMES: tuple[str, ...] = (
    contacts_pb2.DESCRIPTOR.services_by_name["ContactSync"].full_name,
    leads_pb2.DESCRIPTOR.services_by_name["LeadScoring"].full_name,
    campaigns_pb2.DESCRIPTOR.services_by_name["CampaignTriggers"].full_name,
    connectors_pb2.DESCRIPTOR.services_by_name["Connectors"].full_name,
)


class StartupError(Exception):
    """The server cannot start; the message says why."""


@dataclass
class App:
    """A built, bound, not-yet-started server and everything it owns."""

    settings: Settings
    server: grpc.aio.Server
    port: int
    store: SqliteStore
    cache: ContactCache
    connectors: dict[str, Connector]
    dispatcher: Dispatcher
    health: HealthService
    telemetry: Telemetry
    retention: RetentionTask
    owns_telemetry: bool = True
    inbound: InboundServer | None = None
    connect: ConnectServer | None = None

    async def start(self) -> None:
        """Start serving and delivering; mark every service SERVING."""
        await self.server.start()
        self.cache.watch_siblings()
        if self.inbound is not None:
            await self.inbound.start()
        if self.connect is not None:
            await self.connect.start()
        self.dispatcher.start()
        self.retention.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, SERVING)
        log.info(
            "serving on port %d (tls %s, auth %s, telemetry %s)",
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

    async def stop(self, grace_s: float | None = None, drain_s: float | None = None) -> None:
        """Graceful stop: NOT_SERVING first, then drain calls, deliveries and the store.

        For `drain_s` (default `settings.drain_period_s`) every service answers NOT_SERVING
        while the port stays open and calls are still served, so that balancers watching
        health stop sending calls here before they would be refused. Then new calls are
        refused and in-flight ones get `grace_s` (default `settings.grace_period_s`).
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
            await self.inbound.stop()
        if self.connect is not None:
            await self.connect.stop()
        await self.server.stop(grace)
        await self.dispatcher.stop(grace)
        await self.retention.stop()
        for connector in self.connectors.values():
            try:
                await connector.aclose()
            except Exception:
                log.exception("closing connector %s failed", connector.name)
        await self.cache.close()
        if self.owns_telemetry:
            # Flushing exporters blocks (network I/O): keep it off the event loop.
            await asyncio.to_thread(self.telemetry.shutdown)
        await self.store.close()


def standard_interceptors(
    settings: Settings, telemetry: Telemetry, endpoint: ServerEndpoint | None = None
) -> list[grpc.aio.ServerInterceptor]:
    """The interceptors, outermost first; the order is fixed here.

    One `GuardChain` runs, in this order:

    0. telemetry on: the RPC span (continuing the caller's traceparent) and its duration,
       refused calls too; telemetry off: the call's trace id for log lines; then the access
       log (`access_log`), which logs refused calls too;
    1. authentication: who is calling (UNAUTHENTICATED otherwise);
    2. rate limit: per caller, so it needs the principal from (1);
    3. authorization: the scope table (PERMISSION_DENIED);
    4. concurrency limit: only calls that will run hold a slot;
    and maps the handler's exceptions (and the guards' refusals) to statuses.
    `endpoint` gives the spans their `server.address` / `server.port`.
    """
    chain: list[grpc.aio.ServerInterceptor] = []
    guards: list[Guard] = []
    if telemetry.active:
        endpoint = endpoint or ServerEndpoint.from_listen(settings.listen)
        guards.append(RpcTelemetryGuard(telemetry.tracer, telemetry.meter, endpoint))
    else:  # no spans: log lines still get the call's trace id
        guards.append(CallIdGuard())
    if settings.access_log:
        guards.append(AccessLogGuard(quiet_services=(HEALTH_SERVICE,)))
    auth = settings.auth
    if auth.enabled:
        guards.append(AuthenticationGuard(Authenticator(auth), auth.open_services))
    exempt = (HEALTH_SERVICE,)
    limits = settings.limits
    if limits.rate_per_s > 0:
        buckets = TokenBuckets(limits.rate_per_s, limits.rate_burst, limits.max_tracked_callers)
        guards.append(RateLimitGuard(buckets, exempt))
    if auth.enabled:
        guards.append(AuthorizationGuard(SCOPE_BY_METHOD, auth.open_services))
    guards.append(ConcurrencyLimitGuard(limits.max_concurrent_rpcs, exempt))
    chain.append(GuardChain(guards))
    return chain


async def build_app(
    settings: Settings,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    siblings: Siblings | None = None,
    telemetry: Telemetry | None = None,
) -> App:
    """Open the store, build connectors and services, and bind the port (port 0: any free).

    `telemetry` defaults to the exporters in `settings.telemetry`; tests pass their own.
    """
    owns_telemetry = telemetry is None
    if telemetry is None:
        try:
            telemetry = build_telemetry(settings.telemetry)
        except (OSError, ImportError) as exc:  # e.g. the Prometheus port is taken
            raise StartupError(f"cannot set up telemetry: {exc}") from exc
    try:
        validate_rules(settings.scoring)
    except ValueError as exc:
        raise StartupError(f"invalid scoring rules: {exc}") from exc
    endpoint = ServerEndpoint.from_listen(settings.listen)
    try:
        chain = standard_interceptors(settings, telemetry, endpoint)
    except (OSError, ValueError) as exc:  # unreadable or malformed JWKS file
        raise StartupError(f"cannot set up authentication: {exc}") from exc
    store = SqliteStore(settings.database, telemetry.tracer)
    await store.open()
    try:
        connectors = build_registry(settings.connectors, store.connector_state, settings.scoring)
        check_steps(settings.triggers, connectors)
    except ValueError as exc:
        await store.close()
        raise StartupError(str(exc)) from exc
    try:
        cache = ContactCache(settings.cache, siblings)
        tokens = await load_page_tokens(settings.page_tokens, store)
    except CacheBackendError as exc:
        await store.close()
        raise StartupError(str(exc)) from exc
    except ValueError as exc:  # a page-token key reference that does not resolve
        await store.close()
        raise StartupError(f"cannot set up page tokens: {exc}") from exc
    notifier = RunNotifier()
    attempts = AttemptTelemetry(telemetry.tracer, telemetry.meter)
    guards = build_guards(settings.connectors, settings.dispatch)
    limits = await build_limits(settings, guards, store, several_workers=siblings is not None)
    dispatcher = Dispatcher(
        store,
        connectors,
        settings.connectors,
        settings.dispatch,
        notifier,
        attempts,
        RunMetrics(telemetry.meter),
        guards=guards,
        limits=limits,
        lane_of=lane_rule(settings),
    )
    register_gauges(telemetry.meter, store, cache, dispatcher.guards, limits.circuit)
    server = grpc.aio.server(
        interceptors=[*interceptors, *chain],
        options=server_options(settings),
    )
    contacts = ContactService(store, cache, settings.triggers, dispatcher, tokens)
    campaigns = CampaignService(store, cache, settings.triggers, dispatcher, notifier, tokens)
    leads = LeadService(store, cache, settings.scoring, settings.triggers, dispatcher)
    connector_servicer = ConnectorsServicer(
        ConnectorService(
            store, connectors, settings.connectors, attempts, dispatcher.guards, limits
        ),
        DeadLetterService(store, dispatcher, notifier, tokens),
    )
    # Requests are decoded by `decoding`, so that bad bytes get INVALID_ARGUMENT.
    registrations: list[tuple[Callable[[Any, Any], None], object]] = [
        (contacts_pb2_grpc.add_ContactSyncServicer_to_server, ContactSyncServicer(contacts)),
        (leads_pb2_grpc.add_LeadScoringServicer_to_server, LeadScoringServicer(leads)),
        (
            campaigns_pb2_grpc.add_CampaignTriggersServicer_to_server,
            CampaignTriggersServicer(campaigns),
        ),
        (connectors_pb2_grpc.add_ConnectorsServicer_to_server, connector_servicer),
    ]
    for register, servicer in registrations:
        add_servicer(server, register, servicer)
    health_servicer = HealthService()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable(server, (*SERVICE_NAMES, HEALTH_SERVICE))
    try:
        port = add_port(server, settings)
    except (RuntimeError, OSError) as exc:
        await store.close()
        raise StartupError(f"cannot listen on {settings.listen}: {exc}") from exc
    endpoint.port = port
    retention = RetentionTask(
        store, settings.dispatch.idempotency_retention_s, settings.dispatch.purge_interval_s
    )
    inbound = None
    if settings.inbound.listen:
        # With TLS on, the webhook port serves HTTPS with the gRPC port's certificate.
        inbound_tls = ssl_context(settings.tls) if settings.tls.enabled else None
        inbound = InboundServer(settings.inbound, campaigns, inbound_tls)
    connect = None
    if settings.connect.listen:
        try:
            connect = _connect_server(settings, registrations, chain)
        except OSError as exc:
            await store.close()
            raise StartupError(
                f"cannot listen on {settings.connect.listen} (connect.listen): {exc}"
            ) from exc
    return App(
        settings,
        server,
        port,
        store,
        cache,
        connectors,
        dispatcher,
        health_servicer,
        telemetry,
        retention,
        owns_telemetry,
        inbound,
        connect,
    )


def _connect_server(
    settings: Settings,
    registrations: list[tuple[Callable[[Any, Any], None], object]],
    chain: Sequence[grpc.aio.ServerInterceptor],
) -> ConnectServer:
    """The Connect endpoint: the same servicers, behind the same `GuardChain` instance."""
    guards = next(i for i in chain if isinstance(i, GuardChain))
    methods = {
        f"/{service.full_name}/{method.name}": method
        for module in (contacts_pb2, leads_pb2, campaigns_pb2, connectors_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    endpoints = endpoints_for(registrations, methods, guards.guarded)
    app = SwitchboardConnectApp(endpoints, settings.limits.max_receive_message_bytes)
    return ConnectServer(app, settings.connect.listen, settings.tls, settings.grace_period_s)
