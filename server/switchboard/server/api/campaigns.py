"""CampaignTriggers servicer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from switchboard.server.domain.audience import AudienceService
from switchboard.server.domain.campaigns import CampaignService
from switchboard.server.domain.variants import VariantResults
from switchboard.v1 import campaigns_pb2, campaigns_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]  # the request and response types vary by method


class CampaignTriggersServicer(campaigns_pb2_grpc.CampaignTriggersServicer):
    """Campaign runs over gRPC."""

    def __init__(
        self, campaigns: CampaignService, variants: VariantResults, audience: AudienceService
    ) -> None:
        self._campaigns = campaigns
        self._variants = variants
        self._audience = audience

    async def TriggerCampaign(
        self, request: campaigns_pb2.TriggerCampaignRequest, context: Context
    ) -> campaigns_pb2.TriggerCampaignResponse:
        if request.segment:
            campaign = await self._audience.start(request)
            return campaigns_pb2.TriggerCampaignResponse(campaign=campaign)
        run = await self._campaigns.trigger(request, context.time_remaining())
        return campaigns_pb2.TriggerCampaignResponse(run=run)

    async def GetRun(
        self, request: campaigns_pb2.GetRunRequest, context: Context
    ) -> campaigns_pb2.GetRunResponse:
        return campaigns_pb2.GetRunResponse(run=await self._campaigns.get_run(request.id))

    async def ListRuns(
        self, request: campaigns_pb2.ListRunsRequest, context: Context
    ) -> campaigns_pb2.ListRunsResponse:
        return await self._campaigns.list_runs(request)

    async def WatchRun(
        self, request: campaigns_pb2.WatchRunRequest, context: Context
    ) -> AsyncIterator[campaigns_pb2.WatchRunResponse]:
        async for run in self._campaigns.watch(request.id):
            yield campaigns_pb2.WatchRunResponse(run=run)

    async def ListTriggers(
        self, request: campaigns_pb2.ListTriggersRequest, context: Context
    ) -> campaigns_pb2.ListTriggersResponse:
        return self._campaigns.list_triggers(request)

    async def GetVariantResults(
        self, request: campaigns_pb2.GetVariantResultsRequest, context: Context
    ) -> campaigns_pb2.GetVariantResultsResponse:
        return await self._variants.results(request)
    async def GetCampaign(
        self, request: campaigns_pb2.GetCampaignRequest, context: Context
    ) -> campaigns_pb2.GetCampaignResponse:
        return campaigns_pb2.GetCampaignResponse(campaign=await self._audience.get(request.id))

    async def WatchCampaign(
        self, request: campaigns_pb2.WatchCampaignRequest, context: Context
    ) -> AsyncIterator[campaigns_pb2.WatchCampaignResponse]:
        async for campaign in self._audience.watch(request.id):
            yield campaigns_pb2.WatchCampaignResponse(campaign=campaign)
