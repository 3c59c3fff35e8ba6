"""`Switchboard.segments`: the Segments service."""

# `timeout` is the gRPC deadline, which travels to the server with the call;
# `asyncio.timeout` (what ASYNC109 suggests) cannot do that.
# ruff: noqa: ASYNC109

from __future__ import annotations

import builtins
from collections.abc import AsyncGenerator

from switchboard.v1 import contacts_pb2, segments_pb2, segments_pb2_grpc

from ._paging import every_item
from ._transport import USE_DEFAULT, Timeout, Transport

__all__ = ["Segments"]


class Segments:
    """Define segments (CEL rules over contacts), count them and read their members."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport
        self._stub = segments_pb2_grpc.SegmentsStub(transport.channel)

    async def create(
        self, name: str, expression: str, *, description: str = "", timeout: Timeout = USE_DEFAULT
    ) -> segments_pb2.Segment:
        """Creates a segment, e.g. `create("fr-buyers", 'purchases_90d > 5 && country == "FR"')`.

        Raises:
            SwitchboardError: INVALID_ARGUMENT for a bad expression (with its position),
                ALREADY_EXISTS for a taken name.
        """
        segment = segments_pb2.Segment(name=name, expression=expression, description=description)
        reply = await self._transport.call(
            self._stub.CreateSegment,
            segments_pb2.CreateSegmentRequest(segment=segment),
            segments_pb2.CreateSegmentResponse,
            timeout,
        )
        return reply.segment

    async def get(self, name: str, *, timeout: Timeout = USE_DEFAULT) -> segments_pb2.Segment:
        """Returns one segment by name."""
        reply = await self._transport.call(
            self._stub.GetSegment,
            segments_pb2.GetSegmentRequest(name=name),
            segments_pb2.GetSegmentResponse,
            timeout,
        )
        return reply.segment

    async def list(
        self, *, page_size: int = 0, timeout: Timeout = USE_DEFAULT
    ) -> builtins.list[segments_pb2.Segment]:
        """Returns every segment, by name."""
        pages = every_item(
            lambda token: self._transport.call(
                self._stub.ListSegments,
                segments_pb2.ListSegmentsRequest(page_size=page_size, page_token=token),
                segments_pb2.ListSegmentsResponse,
                timeout,
            ),
            lambda page: page.segments,
        )
        return [segment async for segment in pages]

    async def delete(self, name: str, *, timeout: Timeout = USE_DEFAULT) -> None:
        """Deletes a segment."""
        await self._transport.call(
            self._stub.DeleteSegment,
            segments_pb2.DeleteSegmentRequest(name=name),
            segments_pb2.DeleteSegmentResponse,
            timeout,
        )

    async def count(self, name: str, *, timeout: Timeout = USE_DEFAULT) -> int:
        """How many contacts the segment holds now."""
        reply = await self._transport.call(
            self._stub.CountSegment,
            segments_pb2.CountSegmentRequest(name=name),
            segments_pb2.CountSegmentResponse,
            timeout,
        )
        return reply.count

    async def members(
        self, name: str, *, page_size: int = 0, timeout: Timeout = USE_DEFAULT
    ) -> AsyncGenerator[contacts_pb2.Contact, None]:
        """Iterates over the segment's members by contact id, a page at a time;
        `timeout` applies to each page."""
        pages = every_item(
            lambda token: self._transport.call(
                self._stub.ListSegmentMembers,
                segments_pb2.ListSegmentMembersRequest(
                    name=name, page_size=page_size, page_token=token
                ),
                segments_pb2.ListSegmentMembersResponse,
                timeout,
            ),
            lambda page: page.contacts,
        )
        async for contact in pages:
            yield contact
