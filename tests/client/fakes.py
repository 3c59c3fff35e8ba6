"""In-test servicers for the four services, recording what the client sends.

The real server is not used here: these tests pin down the client's side of the contract
(request mapping, metadata, deadlines, retries, error decoding) against plain `grpc.aio`
servicers on a loopback port.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from switchboard.v1 import (
    campaigns_pb2,
    campaigns_pb2_grpc,
    common_pb2,
    connectors_pb2,
    connectors_pb2_grpc,
    contacts_pb2,
    contacts_pb2_grpc,
    leads_pb2,
    leads_pb2_grpc,
)

Hook = Callable[[Any, grpc.aio.ServicerContext], Awaitable[None]]
Handler = Callable[[Any, grpc.aio.ServicerContext], Any]

UNKNOWN_DOMAIN = "@unknown.example"


@dataclass
class Received:
    """One call as the server saw it."""

    method: str
    request: Any  # the request, or the list of requests of a client stream
    metadata: dict[str, str]


@dataclass
class Backend:
    """What the fake servicers received, and per-test changes to how they answer.

    `before[method]` hooks run after a call is recorded and before the default answer (to
    abort or stall it); `override[method]` replaces the default answer altogether.
    """

    received: list[Received] = field(default_factory=list)
    before: dict[str, Hook] = field(default_factory=dict)
    override: dict[str, Handler] = field(default_factory=dict)
    contacts: list[contacts_pb2.Contact] = field(
        default_factory=lambda: [
            contacts_pb2.Contact(id=f"c_{i}", email=f"p{i}@example.com", lists=["newsletter"])
            for i in range(5)
        ]
    )
    runs: list[campaigns_pb2.Run] = field(
        default_factory=lambda: [campaigns_pb2.Run(id=f"r_{i}", event="e") for i in range(3)]
    )

    def requests(self, method: str) -> list[Any]:
        """Returns the requests received by `method`, in order."""
        return [r.request for r in self.received if r.method == method]

    def last(self, method: str) -> Any:
        """Returns the last request received by `method`."""
        return self.requests(method)[-1]

    async def record(
        self, method: str, request: Any, context: grpc.aio.ServicerContext
    ) -> Handler | None:
        self.received.append(Received(method, request, dict(context.invocation_metadata())))
        if method in self.before:
            await self.before[method](request, context)
        return self.override.get(method)


def rich_status(
    code: grpc.StatusCode, message: str, violations: Mapping[str, str] | None = None
) -> grpc.Status:
    """Returns a status carrying `BadRequest` details, as a server sends it."""
    bad_request = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=f, description=d)
            for f, d in (violations or {}).items()
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad_request)
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    return rpc_status.to_status(status)


async def abort_with(context: grpc.aio.ServicerContext, status: grpc.Status) -> None:
    """Ends the call with `status`; grpc.aio has no `abort_with_status`, hence the spelling out."""
    await context.abort(status.code, status.details, trailing_metadata=status.trailing_metadata)


def _page(items: list[Any], page_size: int, token: str) -> tuple[list[Any], str]:
    start = int(token or 0)
    end = start + (page_size or 100)
    return items[start:end], (str(end) if end < len(items) else "")


class ContactSync(contacts_pb2_grpc.ContactSyncServicer):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def UpsertContact(
        self, request: contacts_pb2.UpsertContactRequest, context: grpc.aio.ServicerContext
    ) -> contacts_pb2.UpsertContactResponse:
        if handler := await self.backend.record("UpsertContact", request, context):
            return await handler(request, context)
        contact = contacts_pb2.Contact()
        contact.CopyFrom(request.contact)
        contact.id = contact.id or "c_new"
        contact.version = 1
        return contacts_pb2.UpsertContactResponse(contact=contact, created=True)

    async def GetContact(
        self, request: contacts_pb2.GetContactRequest, context: grpc.aio.ServicerContext
    ) -> contacts_pb2.GetContactResponse:
        if handler := await self.backend.record("GetContact", request, context):
            return await handler(request, context)
        return contacts_pb2.GetContactResponse(
            contact=contacts_pb2.Contact(id=request.id or "c_1", email=request.email or "a@b.c")
        )

    async def ListContacts(
        self, request: contacts_pb2.ListContactsRequest, context: grpc.aio.ServicerContext
    ) -> contacts_pb2.ListContactsResponse:
        await self.backend.record("ListContacts", request, context)
        page, token = _page(self.backend.contacts, request.page_size, request.page_token)
        return contacts_pb2.ListContactsResponse(contacts=page, next_page_token=token)

    async def ImportContacts(
        self,
        request_iterator: AsyncIterator[contacts_pb2.ImportContactsRequest],
        context: grpc.aio.ServicerContext,
    ) -> contacts_pb2.ImportContactsResponse:
        batches = [batch async for batch in request_iterator]
        await self.backend.record("ImportContacts", batches, context)
        rows = [contact for batch in batches for contact in batch.contacts]
        errors = [
            common_pb2.ItemError(index=i, code="INVALID_ARGUMENT", message="email is required")
            for i, contact in enumerate(rows)
            if not contact.email
        ]
        return contacts_pb2.ImportContactsResponse(
            received=len(rows), created=len(rows) - len(errors), failed=len(errors), errors=errors
        )

    async def DeleteContact(
        self, request: contacts_pb2.DeleteContactRequest, context: grpc.aio.ServicerContext
    ) -> contacts_pb2.DeleteContactResponse:
        if handler := await self.backend.record("DeleteContact", request, context):
            return await handler(request, context)
        return contacts_pb2.DeleteContactResponse(id=request.id or "c_1")


def _lead(ref: leads_pb2.ContactRef, **fields: Any) -> leads_pb2.Lead:
    return leads_pb2.Lead(contact_id=ref.id or f"c_for_{ref.email}", **fields)


class LeadScoring(leads_pb2_grpc.LeadScoringServicer):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def RecordActivity(
        self, request: leads_pb2.RecordActivityRequest, context: grpc.aio.ServicerContext
    ) -> leads_pb2.RecordActivityResponse:
        if handler := await self.backend.record("RecordActivity", request, context):
            return await handler(request, context)
        return leads_pb2.RecordActivityResponse(
            activity_id="a_1", lead=_lead(request.contact, score=10, activity_count=1)
        )

    async def ScoreLead(
        self, request: leads_pb2.ScoreLeadRequest, context: grpc.aio.ServicerContext
    ) -> leads_pb2.ScoreLeadResponse:
        await self.backend.record("ScoreLead", request, context)
        return leads_pb2.ScoreLeadResponse(
            lead=_lead(request.contact, score=42, grade=leads_pb2.LEAD_GRADE_C)
        )

    async def UpdateLeadStatus(
        self, request: leads_pb2.UpdateLeadStatusRequest, context: grpc.aio.ServicerContext
    ) -> leads_pb2.UpdateLeadStatusResponse:
        if handler := await self.backend.record("UpdateLeadStatus", request, context):
            return await handler(request, context)
        return leads_pb2.UpdateLeadStatusResponse(
            lead=_lead(request.contact, status=request.status), run_id="r_status"
        )

    async def GetLead(
        self, request: leads_pb2.GetLeadRequest, context: grpc.aio.ServicerContext
    ) -> leads_pb2.GetLeadResponse:
        await self.backend.record("GetLead", request, context)
        return leads_pb2.GetLeadResponse(lead=_lead(request.contact, score=7))

    async def ScoreLeads(
        self,
        request_iterator: AsyncIterator[leads_pb2.ScoreLeadsRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[leads_pb2.ScoreLeadsResponse]:
        index = 0
        # Answers each request as it arrives: a true bidirectional exchange.
        async for request in request_iterator:
            await self.backend.record("ScoreLeads", request, context)
            if request.contact.email.endswith(UNKNOWN_DOMAIN):
                error = common_pb2.ItemError(index=index, code="NOT_FOUND", message="no such")
                yield leads_pb2.ScoreLeadsResponse(index=index, error=error)
            else:
                yield leads_pb2.ScoreLeadsResponse(index=index, lead=_lead(request.contact))
            index += 1


class CampaignTriggers(campaigns_pb2_grpc.CampaignTriggersServicer):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def TriggerCampaign(
        self, request: campaigns_pb2.TriggerCampaignRequest, context: grpc.aio.ServicerContext
    ) -> campaigns_pb2.TriggerCampaignResponse:
        if handler := await self.backend.record("TriggerCampaign", request, context):
            return await handler(request, context)
        status = (
            campaigns_pb2.RUN_STATUS_SUCCEEDED
            if request.wait_for_completion
            else campaigns_pb2.RUN_STATUS_PENDING
        )
        run = campaigns_pb2.Run(
            id="r_new",
            event=request.event,
            contact_id=request.contact.id or "c_new",
            status=status,
            attributes=request.attributes,
        )
        return campaigns_pb2.TriggerCampaignResponse(run=run)

    async def GetRun(
        self, request: campaigns_pb2.GetRunRequest, context: grpc.aio.ServicerContext
    ) -> campaigns_pb2.GetRunResponse:
        await self.backend.record("GetRun", request, context)
        return campaigns_pb2.GetRunResponse(
            run=campaigns_pb2.Run(id=request.id, status=campaigns_pb2.RUN_STATUS_RUNNING)
        )

    async def ListRuns(
        self, request: campaigns_pb2.ListRunsRequest, context: grpc.aio.ServicerContext
    ) -> campaigns_pb2.ListRunsResponse:
        await self.backend.record("ListRuns", request, context)
        page, token = _page(self.backend.runs, request.page_size, request.page_token)
        return campaigns_pb2.ListRunsResponse(runs=page, next_page_token=token)

    async def WatchRun(
        self, request: campaigns_pb2.WatchRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[campaigns_pb2.WatchRunResponse]:
        if handler := await self.backend.record("WatchRun", request, context):
            async for reply in handler(request, context):
                yield reply
            return
        if request.id == "r_unknown":
            await context.abort(grpc.StatusCode.NOT_FOUND, f"run {request.id} not found")
        for status in ("PENDING", "RUNNING", "SUCCEEDED"):
            run = campaigns_pb2.Run(
                id=request.id, status=campaigns_pb2.RunStatus.Value(f"RUN_STATUS_{status}")
            )
            yield campaigns_pb2.WatchRunResponse(run=run)


class Connectors(connectors_pb2_grpc.ConnectorsServicer):
    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def ListConnectors(
        self, request: connectors_pb2.ListConnectorsRequest, context: grpc.aio.ServicerContext
    ) -> connectors_pb2.ListConnectorsResponse:
        await self.backend.record("ListConnectors", request, context)
        fake = connectors_pb2.ConnectorInfo(
            name="fake",
            kind="fake",
            actions=["echo"],
            health=connectors_pb2.CONNECTOR_HEALTH_SERVING,
        )
        return connectors_pb2.ListConnectorsResponse(connectors=[fake])

    async def InvokeConnector(
        self, request: connectors_pb2.InvokeConnectorRequest, context: grpc.aio.ServicerContext
    ) -> connectors_pb2.InvokeConnectorResponse:
        if handler := await self.backend.record("InvokeConnector", request, context):
            return await handler(request, context)
        return connectors_pb2.InvokeConnectorResponse(result=request.payload)


async def start_server(backend: Backend) -> tuple[grpc.aio.Server, str]:
    """Starts a server with the fake servicers on a free loopback port."""
    server = grpc.aio.server()
    contacts_pb2_grpc.add_ContactSyncServicer_to_server(ContactSync(backend), server)
    leads_pb2_grpc.add_LeadScoringServicer_to_server(LeadScoring(backend), server)
    campaigns_pb2_grpc.add_CampaignTriggersServicer_to_server(CampaignTriggers(backend), server)
    connectors_pb2_grpc.add_ConnectorsServicer_to_server(Connectors(backend), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"
