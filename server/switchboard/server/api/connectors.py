"""Connectors servicer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from switchboard.server.domain.backfill import BackfillService
from switchboard.server.domain.connectors import ConnectorService
from switchboard.server.domain.dead_letters import DeadLetterService
from switchboard.v1 import connectors_pb2, connectors_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]  # the request and response types vary by method


class ConnectorsServicer(connectors_pb2_grpc.ConnectorsServicer):
    """Connector listing, direct invocation and dead letters over gRPC."""

    def __init__(
        self,
        connectors: ConnectorService,
        dead_letters: DeadLetterService,
        backfills: BackfillService,
    ) -> None:
        self._connectors = connectors
        self._dead_letters = dead_letters
        self._backfills = backfills

    async def ListConnectors(
        self, request: connectors_pb2.ListConnectorsRequest, context: Context
    ) -> connectors_pb2.ListConnectorsResponse:
        return await self._connectors.list()

    async def InvokeConnector(
        self, request: connectors_pb2.InvokeConnectorRequest, context: Context
    ) -> connectors_pb2.InvokeConnectorResponse:
        return await self._connectors.invoke(request, context.time_remaining())

    async def ListDeadLetters(
        self, request: connectors_pb2.ListDeadLettersRequest, context: Context
    ) -> connectors_pb2.ListDeadLettersResponse:
        return await self._dead_letters.list(request)

    async def RedriveDeadLetters(
        self, request: connectors_pb2.RedriveDeadLettersRequest, context: Context
    ) -> connectors_pb2.RedriveDeadLettersResponse:
        return await self._dead_letters.redrive(request)

    async def BackfillConnector(
        self, request: connectors_pb2.BackfillConnectorRequest, context: Context
    ) -> AsyncIterator[connectors_pb2.BackfillConnectorResponse]:
        async for progress in self._backfills.run(request):
            yield progress
