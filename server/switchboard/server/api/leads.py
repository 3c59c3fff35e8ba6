"""LeadScoring servicer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from switchboard.server.domain.leads import LeadService
from switchboard.v1 import leads_pb2, leads_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]  # the request and response types vary by method


class LeadScoringServicer(leads_pb2_grpc.LeadScoringServicer):
    """Lead scoring over gRPC."""

    def __init__(self, leads: LeadService) -> None:
        self._leads = leads

    async def RecordActivity(
        self, request: leads_pb2.RecordActivityRequest, context: Context
    ) -> leads_pb2.RecordActivityResponse:
        return await self._leads.record_activity(request)

    async def ScoreLead(
        self, request: leads_pb2.ScoreLeadRequest, context: Context
    ) -> leads_pb2.ScoreLeadResponse:
        return leads_pb2.ScoreLeadResponse(lead=await self._leads.score(request.contact))

    async def UpdateLeadStatus(
        self, request: leads_pb2.UpdateLeadStatusRequest, context: Context
    ) -> leads_pb2.UpdateLeadStatusResponse:
        return await self._leads.update_status(request)

    async def GetLead(
        self, request: leads_pb2.GetLeadRequest, context: Context
    ) -> leads_pb2.GetLeadResponse:
        return leads_pb2.GetLeadResponse(lead=await self._leads.get(request.contact))

    async def ScoreLeads(
        self, request_iterator: AsyncIterator[leads_pb2.ScoreLeadsRequest], context: Context
    ) -> AsyncIterator[leads_pb2.ScoreLeadsResponse]:
        async for response in self._leads.score_many(request_iterator):
            yield response
