"""Segments servicer."""

from __future__ import annotations

from typing import Any

import grpc

from switchboard.server.domain.segments import SegmentService
from switchboard.v1 import segments_pb2, segments_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]  # the request and response types vary by method


class SegmentsServicer(segments_pb2_grpc.SegmentsServicer):
    """Segments over gRPC."""

    def __init__(self, segments: SegmentService) -> None:
        self._segments = segments

    async def CreateSegment(
        self, request: segments_pb2.CreateSegmentRequest, context: Context
    ) -> segments_pb2.CreateSegmentResponse:
        segment = await self._segments.create(request.segment)
        return segments_pb2.CreateSegmentResponse(segment=segment)

    async def GetSegment(
        self, request: segments_pb2.GetSegmentRequest, context: Context
    ) -> segments_pb2.GetSegmentResponse:
        return segments_pb2.GetSegmentResponse(segment=await self._segments.get(request.name))

    async def ListSegments(
        self, request: segments_pb2.ListSegmentsRequest, context: Context
    ) -> segments_pb2.ListSegmentsResponse:
        return await self._segments.list_page(request)

    async def DeleteSegment(
        self, request: segments_pb2.DeleteSegmentRequest, context: Context
    ) -> segments_pb2.DeleteSegmentResponse:
        await self._segments.delete(request.name)
        return segments_pb2.DeleteSegmentResponse()

    async def CountSegment(
        self, request: segments_pb2.CountSegmentRequest, context: Context
    ) -> segments_pb2.CountSegmentResponse:
        return segments_pb2.CountSegmentResponse(count=await self._segments.count(request.name))

    async def ListSegmentMembers(
        self, request: segments_pb2.ListSegmentMembersRequest, context: Context
    ) -> segments_pb2.ListSegmentMembersResponse:
        return await self._segments.members(request)
