"""Builds the gRPC server from settings, apart from running it (see `serve`).

`build_app` wires store → cache → connectors → dispatcher → domain → servicers, adds health
and reflection, and binds the port without blocking. `App.stop` is the graceful path:
health NOT_SERVING, in-flight calls finish within the grace period, then everything closes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from switchboard.server import reflection
from switchboard.server.api.campaigns import CampaignTriggersServicer
from switchboard.server.api.connectors import ConnectorsServicer
from switchboard.server.api.contacts import ContactSyncServicer
from switchboard.server.api.leads import LeadScoringServicer
from switchboard.server.cache import ContactCache
from switchboard.server.cache_backends import CacheBackendError
from switchboard.server.config import Settings
from switchboard.server.connectors.base import Connector
from switchboard.server.connectors.registry import build_registry, check_steps
from switchboard.server.dispatch.notify import RunNotifier
from switchboard.server.dispatch.worker import Dispatcher
from switchboard.server.domain.campaigns import CampaignService
from switchboard.server.domain.connectors import ConnectorService
from switchboard.server.domain.contacts import ContactService
from switchboard.server.domain.leads import LeadService
from switchboard.server.interceptors.errors import ErrorInterceptor
from switchboard.server.scoring_rules import validate_rules
from switchboard.server.siblings import Siblings
from switchboard.server.store.sqlite import SqliteStore
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
SERVING = health_pb2.HealthCheckResponse.SERVING


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
    health: health.aio.HealthServicer

    async def start(self) -> None:
        """Start serving and delivering; mark every service SERVING."""
        await self.server.start()
        self.cache.watch_siblings()
        self.dispatcher.start()
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, SERVING)

    async def stop(self, grace_s: float | None = None) -> None:
        """Graceful stop: NOT_SERVING first, then drain calls, deliveries and the store."""
        grace = self.settings.grace_period_s if grace_s is None else grace_s
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        await self.dispatcher.stop(grace)
        for connector in self.connectors.values():
            try:
                await connector.aclose()
            except Exception:
                log.exception("closing connector %s failed", connector.name)
        await self.cache.close()
        await self.store.close()


async def build_app(
    settings: Settings,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    siblings: Siblings | None = None,
) -> App:
    """Open the store, build connectors and services, and bind the port (port 0: any free)."""
    try:
        validate_rules(settings.scoring)
    except ValueError as exc:
        raise StartupError(f"invalid scoring rules: {exc}") from exc
    store = SqliteStore(settings.database)
    await store.open()
    try:
        connectors = build_registry(settings.connectors, store.connector_state, settings.scoring)
        check_steps(settings.triggers, connectors)
    except ValueError as exc:
        await store.close()
        raise StartupError(str(exc)) from exc
    try:
        cache = ContactCache(settings.cache, siblings)
    except CacheBackendError as exc:
        await store.close()
        raise StartupError(str(exc)) from exc
    notifier = RunNotifier()
    dispatcher = Dispatcher(store, connectors, settings.connectors, settings.dispatch, notifier)
    server = grpc.aio.server(interceptors=[*interceptors, ErrorInterceptor()])
    contacts = ContactService(store, cache, settings.triggers, dispatcher)
    campaigns = CampaignService(store, cache, settings.triggers, dispatcher, notifier)
    leads = LeadService(store, settings.scoring, settings.triggers, dispatcher)
    contacts_pb2_grpc.add_ContactSyncServicer_to_server(ContactSyncServicer(contacts), server)  # type: ignore[no-untyped-call]
    leads_pb2_grpc.add_LeadScoringServicer_to_server(LeadScoringServicer(leads), server)  # type: ignore[no-untyped-call]
    campaigns_pb2_grpc.add_CampaignTriggersServicer_to_server(
        CampaignTriggersServicer(campaigns), server
    )  # type: ignore[no-untyped-call]
    connector_servicer = ConnectorsServicer(
        ConnectorService(store, connectors, settings.connectors)
    )
    connectors_pb2_grpc.add_ConnectorsServicer_to_server(connector_servicer, server)  # type: ignore[no-untyped-call]
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable(server, (*SERVICE_NAMES, health.SERVICE_NAME))
    try:
        port = server.add_insecure_port(settings.listen)
    except RuntimeError as exc:
        await store.close()
        raise StartupError(f"cannot listen on {settings.listen}: {exc}") from exc
    return App(settings, server, port, store, cache, connectors, dispatcher, health_servicer)
