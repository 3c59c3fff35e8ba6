"""Admin servicer: operator tasks over the whole database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from switchboard.server.domain.rebuild import RebuildService
from switchboard.v1 import admin_pb2, admin_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]


class AdminServicer(admin_pb2_grpc.AdminServicer):
    """Admin over gRPC."""

    def __init__(self, rebuild: RebuildService) -> None:
        self._rebuild = rebuild

    async def RebuildReadModels(
        self, request: admin_pb2.RebuildReadModelsRequest, context: Context
    ) -> AsyncIterator[admin_pb2.RebuildReadModelsResponse]:
        async for message in self._rebuild.rebuild(request.dry_run):
            yield message
