"""Events servicer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from switchboard.server.domain.events import EventService
from switchboard.v1 import events_pb2, events_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]  # the request and response types vary by method


class EventsServicer(events_pb2_grpc.EventsServicer):
    """The event log over gRPC."""

    def __init__(self, events: EventService) -> None:
        self._events = events

    async def StreamEvents(
        self, request: events_pb2.StreamEventsRequest, context: Context
    ) -> AsyncIterator[events_pb2.StreamEventsResponse]:
        async for response in self._events.stream(request):
            yield response

    async def GetContactHistory(
        self, request: events_pb2.GetContactHistoryRequest, context: Context
    ) -> events_pb2.GetContactHistoryResponse:
        return await self._events.history(request)
