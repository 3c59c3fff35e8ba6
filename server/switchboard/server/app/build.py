"""Builds the gRPC server from settings, apart from running it (see `serve`).

`build_app` wires store → cache → connectors → dispatcher → domain → servicers, adds health
and reflection, and binds the port without blocking. Every resource it opens is registered
on an `AsyncExitStack`: a failure part-way closes what was opened, and the stack is handed
to the `App` (`app.py`), whose `stop` closes it last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import grpc
from grpc_health.v1 import health_pb2_grpc

from switchboard.server.api.admin import AdminServicer
from switchboard.server.api.campaigns import CampaignTriggersServicer
from switchboard.server.api.connect import ConnectServer, SwitchboardConnectApp, endpoints_for
from switchboard.server.api.connectors import ConnectorsServicer
from switchboard.server.api.contacts import ContactSyncServicer
from switchboard.server.api.decoding import add_servicer
from switchboard.server.api.events import EventsServicer
from switchboard.server.api.health import SERVICE_NAME as HEALTH_SERVICE
from switchboard.server.api.health import HealthService
from switchboard.server.api.leads import LeadScoringServicer
from switchboard.server.api.segments import SegmentsServicer
from switchboard.server.api.webhooks import InboundServer
from switchboard.server.app import reflection
from switchboard.server.app.app import SERVICE_NAMES, App, closing
from switchboard.server.app.caller_limits import StartupProblem, rate_guard
from switchboard.server.app.gauges import register_gauges
from switchboard.server.app.rebalance import rebalance_options
from switchboard.server.app.roles import open_nudges, worker_address
from switchboard.server.app.transport import add_port, server_options, ssl_context
from switchboard.server.auth.authenticator import Authenticator
from switchboard.server.cache.backends import CacheBackendError
from switchboard.server.cache.read_cache import ReadCache
from switchboard.server.cache.siblings import Siblings
from switchboard.server.cache.steady_scores import SteadyScores
from switchboard.server.common.scopes import API_MODULES, SCOPE_BY_METHOD
from switchboard.server.config.settings import Settings
from switchboard.server.connectors.registry import build_registry, check_steps
from switchboard.server.connectors.vendor_limits import with_connector_defaults
from switchboard.server.dispatch.attempts import AttemptTelemetry
from switchboard.server.dispatch.guard import build_guards
from switchboard.server.dispatch.limits.build import build_limits, lane_rule
from switchboard.server.dispatch.notify import RunNotifier
from switchboard.server.dispatch.run_metrics import RunMetrics
from switchboard.server.dispatch.worker import Dispatcher
from switchboard.server.domain.audience import AudienceService, AudienceTask
from switchboard.server.domain.backfill import BackfillService
from switchboard.server.domain.campaigns import CampaignService
from switchboard.server.domain.connectors import ConnectorService
from switchboard.server.domain.contacts import ContactService
from switchboard.server.domain.dead_letters import DeadLetterService
from switchboard.server.domain.events import EventService
from switchboard.server.domain.leads import LeadService
from switchboard.server.domain.page_keys import load_page_tokens
from switchboard.server.domain.rebuild import RebuildService
from switchboard.server.domain.segments import SegmentService
from switchboard.server.domain.variants import VariantResults
from switchboard.server.errors import Unavailable
from switchboard.server.interceptors.access_log import AccessLogGuard
from switchboard.server.interceptors.authn import AuthenticationGuard
from switchboard.server.interceptors.authz import AuthorizationGuard
from switchboard.server.interceptors.call_ids import CallIdGuard
from switchboard.server.interceptors.chain import Guard, GuardChain
from switchboard.server.interceptors.concurrency import ConcurrencyLimitGuard
from switchboard.server.interceptors.ratelimit import CallerRates, RateLimitGuard, TokenBuckets
from switchboard.server.interceptors.rpc_telemetry import RpcTelemetryGuard, ServerEndpoint
from switchboard.server.observability.heap_growth import HeapGrowth
from switchboard.server.observability.loop_lag import LoopLagMonitor
from switchboard.server.observability.telemetry import Telemetry, build_telemetry
from switchboard.server.rules.scoring import validate_rules
from switchboard.server.rules.segment_sql import POSTGRES, SQLITE
from switchboard.server.runs.sync import batched_destinations, check_destinations
from switchboard.server.store.base import SchemaTooNew
from switchboard.server.store.postgres.migrate import SchemaTooOld
from switchboard.server.store.postgres.store import PostgresStore
from switchboard.server.store.retention import RetentionTask
from switchboard.server.store.select import build_store
from switchboard.v1 import (
    admin_pb2_grpc,
    campaigns_pb2_grpc,
    connectors_pb2_grpc,
    contacts_pb2_grpc,
    events_pb2_grpc,
    leads_pb2_grpc,
    segments_pb2_grpc,
)

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The server cannot start; the message says why."""


def standard_interceptors(
    settings: Settings,
    telemetry: Telemetry,
    endpoint: ServerEndpoint | None = None,
    rate_guard: Guard | None = None,
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
    `endpoint` gives the spans their `server.address` / `server.port`; `rate_guard`
    replaces the in-memory per-caller limit (2) built from `settings.limits`.
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
    if rate_guard is None and (limits.rate_per_s > 0 or limits.callers):
        buckets = TokenBuckets(limits.rate_per_s, limits.rate_burst, limits.max_tracked_callers)
        rate_guard = RateLimitGuard(buckets, exempt, CallerRates(limits))
    if rate_guard is not None:
        guards.append(rate_guard)
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
    Whatever was opened before a failure is closed again before `StartupError` is raised.
    """
    async with contextlib.AsyncExitStack() as stack:
        app = await _build(stack, settings, interceptors, siblings, telemetry)
        app.resources = stack.pop_all()
        return app


async def _build(
    stack: contextlib.AsyncExitStack,
    settings: Settings,
    interceptors: Sequence[grpc.aio.ServerInterceptor],
    siblings: Siblings | None,
    telemetry: Telemetry | None,
) -> App:
    if telemetry is None:
        try:
            telemetry = build_telemetry(settings.telemetry)
        except (OSError, ImportError) as exc:  # e.g. the Prometheus port is taken
            raise StartupError(f"cannot set up telemetry: {exc}") from exc
        # Flushing exporters blocks (network I/O): keep it off the event loop.
        closing(stack, "telemetry", partial(asyncio.to_thread, telemetry.shutdown))
    try:
        validate_rules(settings.scoring)
    except ValueError as exc:
        raise StartupError(f"invalid scoring rules: {exc}") from exc
    endpoint = ServerEndpoint.from_listen(settings.listen)
    rates = CallerRates(settings.limits)
    try:
        limiter = rate_guard(settings, rates, siblings is not None, stack)
    except StartupProblem as exc:
        raise StartupError(str(exc)) from exc
    try:
        chain = standard_interceptors(settings, telemetry, endpoint, limiter)
    except (OSError, ValueError) as exc:  # unreadable or malformed JWKS file
        raise StartupError(f"cannot set up authentication: {exc}") from exc
    if settings.telemetry.heap_growth_s > 0:  # a diagnostic: see observability/heap_growth.py
        heap = HeapGrowth(settings.telemetry.heap_growth_s)
        heap.start()
        stack.push_async_callback(heap.aclose)
    store = build_store(settings.database, telemetry.tracer)
    try:
        await store.open()
    except (Unavailable, SchemaTooNew, SchemaTooOld) as exc:
        raise StartupError(f"cannot open the store: {exc}") from exc
    except ValueError as exc:  # a database password reference that does not resolve
        raise StartupError(f"cannot open the store: database.password: {exc}") from exc
    closing(stack, "the store", store.close)
    try:
        connectors = build_registry(settings.connectors, store.connector_state, settings.scoring)
        check_steps(settings.triggers, connectors)
        # A vendor adapter's documented limits apply where the configuration sets none.
        connector_settings = with_connector_defaults(settings.connectors, connectors)
        check_destinations(settings.sync, connectors)
    except ValueError as exc:
        raise StartupError(str(exc)) from exc
    for connector in connectors.values():
        closing(stack, f"connector {connector.name}", connector.aclose)
    try:
        cache = ReadCache(settings.cache, siblings)
    except CacheBackendError as exc:
        raise StartupError(str(exc)) from exc
    closing(stack, "the cache", cache.close)
    try:
        tokens = await load_page_tokens(settings.page_tokens, store)
    except ValueError as exc:  # a page-token key reference that does not resolve
        raise StartupError(f"cannot set up page tokens: {exc}") from exc
    notifier = RunNotifier()
    attempts = AttemptTelemetry(telemetry.tracer, telemetry.meter)
    # Vendor adapters' documented limits fill what the operator left unset.
    effective = settings.model_copy(update={"connectors": connector_settings})
    guards = build_guards(connector_settings, settings.dispatch)
    limits = await build_limits(effective, guards, store, several_workers=siblings is not None)
    dispatcher = Dispatcher(
        store,
        connectors,
        connector_settings,
        settings.dispatch,
        notifier,
        attempts,
        RunMetrics(telemetry.meter),
        guards=guards,
        limits=limits,
        lane_of=lane_rule(settings),
        cache=cache,
    )
    if isinstance(store, PostgresStore) and settings.role != "api":
        # Steps queued by other replicas wake this dispatcher at once, not at its next poll.
        store.on_enqueue(dispatcher.wake)
    try:
        open_nudges(settings, dispatcher, notifier, stack.enter_context(contextlib.ExitStack()))
    except OSError as exc:
        raise StartupError(
            f"cannot open the wake-up socket of role {settings.role}: {exc}"
        ) from exc
    steady = SteadyScores()
    register_gauges(telemetry.meter, store, cache, dispatcher.guards, limits.circuit, steady)
    server = grpc.aio.server(
        interceptors=[*interceptors, *chain],
        options=[*server_options(settings), *rebalance_options(settings)],
    )
    contacts = ContactService(
        store,
        cache,
        settings.triggers,
        dispatcher,
        tokens,
        sync=settings.sync,
        batched=batched_destinations(settings.sync, connectors),
        import_backlog_s=settings.limits.import_backlog_s,
    )
    campaigns = CampaignService(store, cache, settings.triggers, dispatcher, notifier, tokens)
    leads = LeadService(store, cache, settings.scoring, settings.triggers, dispatcher, steady)
    dialect = POSTGRES if isinstance(store, PostgresStore) else SQLITE
    segments = SegmentService(store, tokens, dialect)
    audience = AudienceService(
        store, segments, campaigns.trigger_for, dialect, settings.audience, dispatcher
    )
    connector_servicer = ConnectorsServicer(
        ConnectorService(
            store, connectors, connector_settings, attempts, dispatcher.guards, limits
        ),
        DeadLetterService(store, dispatcher, notifier, tokens),
        BackfillService(store, connectors, settings.sync, dispatcher, segments),
    )
    # Requests are decoded by `decoding`, so that bad bytes get INVALID_ARGUMENT.
    registrations: list[tuple[Callable[[Any, Any], None], object]] = [
        (contacts_pb2_grpc.add_ContactSyncServicer_to_server, ContactSyncServicer(contacts)),
        (leads_pb2_grpc.add_LeadScoringServicer_to_server, LeadScoringServicer(leads)),
        (
            campaigns_pb2_grpc.add_CampaignTriggersServicer_to_server,
            CampaignTriggersServicer(campaigns, VariantResults(store, settings.triggers), audience),
        ),
        (connectors_pb2_grpc.add_ConnectorsServicer_to_server, connector_servicer),
        (
            events_pb2_grpc.add_EventsServicer_to_server,
            EventsServicer(EventService(store, tokens)),
        ),
        (segments_pb2_grpc.add_SegmentsServicer_to_server, SegmentsServicer(segments)),
        (admin_pb2_grpc.add_AdminServicer_to_server, AdminServicer(RebuildService(store))),
    ]
    serves_calls = settings.role != "dispatch"  # a dispatch process answers health only
    if serves_calls:
        for register, servicer in registrations:
            add_servicer(server, register, servicer)
    health_servicer = HealthService()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable(server, (*(SERVICE_NAMES if serves_calls else ()), HEALTH_SERVICE))
    try:
        port = add_port(server, settings)
    except (RuntimeError, OSError) as exc:
        raise StartupError(f"cannot listen on {settings.listen}: {exc}") from exc
    endpoint.port = port
    if settings.worker_listen and siblings is not None and serves_calls:
        own = worker_address(settings.worker_listen, siblings.index)
        try:
            add_port(server, settings.model_copy(update={"listen": own}))
        except (RuntimeError, OSError) as exc:
            raise StartupError(f"cannot listen on {own} (worker_listen): {exc}") from exc
    retention = RetentionTask(
        store, settings.dispatch.idempotency_retention_s, settings.dispatch.purge_interval_s
    )
    inbound = None
    if settings.inbound.listen and serves_calls:
        # With TLS on, the webhook port serves HTTPS with the gRPC port's certificate.
        inbound_tls = ssl_context(settings.tls) if settings.tls.enabled else None
        inbound = InboundServer(settings.inbound, campaigns, inbound_tls)
    connect = None
    if settings.connect.listen and serves_calls:
        try:
            connect = _connect_server(settings, registrations, chain)
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {settings.connect.listen} (connect.listen): {exc}"
            ) from exc
    return App(
        caller_rates=rates,
        settings=settings,
        server=server,
        port=port,
        store=store,
        cache=cache,
        connectors=connectors,
        dispatcher=dispatcher,
        health=health_servicer,
        telemetry=telemetry,
        retention=retention,
        audience=AudienceTask(audience, settings.audience),
        inbound=inbound,
        connect=connect,
        loop_lag=LoopLagMonitor(telemetry.meter, warn_ms=settings.telemetry.loop_lag_warn_ms),
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
        for module in API_MODULES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    endpoints = endpoints_for(registrations, methods, guards.guarded)
    app = SwitchboardConnectApp(endpoints, settings.limits.max_receive_message_bytes)
    return ConnectServer(app, settings.connect.listen, settings.tls, settings.grace_period_s)
