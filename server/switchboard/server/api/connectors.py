"""Connectors servicer."""

from __future__ import annotations

from typing import Any

import grpc

from switchboard.server.domain.connectors import ConnectorService
from switchboard.v1 import connectors_pb2, connectors_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]  # the request and response types vary by method


class ConnectorsServicer(connectors_pb2_grpc.ConnectorsServicer):
    """Connector listing and direct invocation over gRPC."""

    def __init__(self, connectors: ConnectorService) -> None:
        self._connectors = connectors

    async def ListConnectors(
        self, request: connectors_pb2.ListConnectorsRequest, context: Context
    ) -> connectors_pb2.ListConnectorsResponse:
        return await self._connectors.list()

    async def InvokeConnector(
        self, request: connectors_pb2.InvokeConnectorRequest, context: Context
    ) -> connectors_pb2.InvokeConnectorResponse:
        return await self._connectors.invoke(request)
