"""The four Switchboard services of `FakeSwitchboard`, answering from its `State`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

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

from ._state import Call, Refusal, State, item_error, page

R = TypeVar("R", bound=Message)
Context = grpc.aio.ServicerContext[Any, Any]


class Gate:
    """What every call passes first: recording, the API key, and injected failures."""

    def __init__(self, state: State, api_key: str | None) -> None:
        self.state = state
        self.api_key = api_key
        self.failures: dict[str, list[Refusal]] = {}

    def enter(self, method: str, request: Message | list[Message], context: Context) -> None:
        """Records the call; raises `Refusal` when it must fail."""
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        self.state.calls.append(Call(method, request, metadata))  # type: ignore[arg-type]
        if self.api_key is not None and metadata.get("authorization") != f"Bearer {self.api_key}":
            raise Refusal(grpc.StatusCode.UNAUTHENTICATED, "missing or unknown API key")
        pending = self.failures.get(method)
        if pending:
            raise pending.pop(0)

    async def unary(
        self, method: str, request: Message, context: Context, work: Callable[[], R]
    ) -> R:
        """Answers a unary call with `work()`, or with the status of its refusal."""
        try:
            self.enter(method, request, context)
            return work()
        except Refusal as refusal:
            await context.abort(refusal.code, refusal.message, refusal.trailing_metadata())
            raise  # abort() raises; this keeps type checkers informed


class ContactSync(contacts_pb2_grpc.ContactSyncServicer):
    def __init__(self, gate: Gate) -> None:
        self._gate, self._state = gate, gate.state

    async def UpsertContact(
        self, request: contacts_pb2.UpsertContactRequest, context: Context
    ) -> contacts_pb2.UpsertContactResponse:
        def work() -> contacts_pb2.UpsertContactResponse:
            contact, outcome = self._state.upsert(
                request.contact,
                mode=request.mode,
                expected_version=request.expected_version,
                mask=list(request.update_mask.paths),
            )
            return contacts_pb2.UpsertContactResponse(contact=contact, created=outcome == "created")

        return await self._gate.unary(
            "UpsertContact",
            request,
            context,
            lambda: self._state.once("UpsertContact", request.idempotency_key, work),  # type: ignore[arg-type,return-value]
        )

    async def GetContact(
        self, request: contacts_pb2.GetContactRequest, context: Context
    ) -> contacts_pb2.GetContactResponse:
        return await self._gate.unary(
            "GetContact",
            request,
            context,
            lambda: contacts_pb2.GetContactResponse(
                contact=self._state.lookup(request.id, request.email)
            ),
        )

    async def ListContacts(
        self, request: contacts_pb2.ListContactsRequest, context: Context
    ) -> contacts_pb2.ListContactsResponse:
        def work() -> contacts_pb2.ListContactsResponse:
            rows = [
                c
                for c in self._state.contacts.values()
                if not request.list or request.list in c.lists
            ]
            items, token = page(rows, request.page_size, request.page_token, 100)
            return contacts_pb2.ListContactsResponse(contacts=items, next_page_token=token)

        return await self._gate.unary("ListContacts", request, context, work)

    async def ImportContacts(
        self,
        request_iterator: AsyncIterator[contacts_pb2.ImportContactsRequest],
        context: Context,
    ) -> contacts_pb2.ImportContactsResponse:
        batches = [batch async for batch in request_iterator]

        def work() -> contacts_pb2.ImportContactsResponse:
            summary = contacts_pb2.ImportContactsResponse()
            rows = [contact for batch in batches for contact in batch.contacts]
            for index, row in enumerate(rows):
                summary.received += 1
                try:
                    _, outcome = self._state.upsert(row)
                except Refusal as refusal:
                    summary.failed += 1
                    summary.errors.append(item_error(index, row.email, refusal))
                    continue
                setattr(summary, outcome, getattr(summary, outcome) + 1)
            return summary

        return await self._gate.unary("ImportContacts", batches, context, work)  # type: ignore[arg-type]

    async def DeleteContact(
        self, request: contacts_pb2.DeleteContactRequest, context: Context
    ) -> contacts_pb2.DeleteContactResponse:
        def work() -> contacts_pb2.DeleteContactResponse:
            contact = self._state.lookup(request.id, request.email)
            del self._state.contacts[contact.id]
            self._state.leads.pop(contact.id, None)
            reply = contacts_pb2.DeleteContactResponse(id=contact.id)
            reply.deleted_at.GetCurrentTime()
            return reply

        return await self._gate.unary("DeleteContact", request, context, work)


class LeadScoring(leads_pb2_grpc.LeadScoringServicer):
    def __init__(self, gate: Gate) -> None:
        self._gate, self._state = gate, gate.state

    async def RecordActivity(
        self, request: leads_pb2.RecordActivityRequest, context: Context
    ) -> leads_pb2.RecordActivityResponse:
        def work() -> leads_pb2.RecordActivityResponse:
            self._state.record_activity(request.contact, request.activity)
            return leads_pb2.RecordActivityResponse(
                activity_id=self._state.new_id("a"), lead=self._state.lead(request.contact)
            )

        return await self._gate.unary("RecordActivity", request, context, work)

    async def ScoreLead(
        self, request: leads_pb2.ScoreLeadRequest, context: Context
    ) -> leads_pb2.ScoreLeadResponse:
        return await self._gate.unary(
            "ScoreLead",
            request,
            context,
            lambda: leads_pb2.ScoreLeadResponse(lead=self._state.lead(request.contact)),
        )

    async def GetLead(
        self, request: leads_pb2.GetLeadRequest, context: Context
    ) -> leads_pb2.GetLeadResponse:
        return await self._gate.unary(
            "GetLead",
            request,
            context,
            lambda: leads_pb2.GetLeadResponse(lead=self._state.lead(request.contact)),
        )

    async def UpdateLeadStatus(
        self, request: leads_pb2.UpdateLeadStatusRequest, context: Context
    ) -> leads_pb2.UpdateLeadStatusResponse:
        def work() -> leads_pb2.UpdateLeadStatusResponse:
            lead = self._state.lead(request.contact)
            lead.status = request.status
            lead.status_changed_at.GetCurrentTime()
            return leads_pb2.UpdateLeadStatusResponse(lead=lead)

        return await self._gate.unary("UpdateLeadStatus", request, context, work)

    async def ScoreLeads(
        self, request_iterator: AsyncIterator[leads_pb2.ScoreLeadsRequest], context: Context
    ) -> AsyncIterator[leads_pb2.ScoreLeadsResponse]:
        index = 0
        async for request in request_iterator:
            try:
                self._gate.enter("ScoreLeads", request, context)
            except Refusal as refusal:
                await context.abort(refusal.code, refusal.message)
            try:
                lead = self._state.lead(request.contact)
            except Refusal as refusal:
                key = request.contact.email or request.contact.id
                yield leads_pb2.ScoreLeadsResponse(
                    index=index, error=item_error(index, key, refusal)
                )
            else:
                yield leads_pb2.ScoreLeadsResponse(index=index, lead=lead)
            index += 1


class CampaignTriggers(campaigns_pb2_grpc.CampaignTriggersServicer):
    def __init__(self, gate: Gate) -> None:
        self._gate, self._state = gate, gate.state

    async def TriggerCampaign(
        self, request: campaigns_pb2.TriggerCampaignRequest, context: Context
    ) -> campaigns_pb2.TriggerCampaignResponse:
        def work() -> campaigns_pb2.TriggerCampaignResponse:
            run = self._state.start_run(request.event, request.contact, request.attributes)
            return campaigns_pb2.TriggerCampaignResponse(run=run)

        return await self._gate.unary(
            "TriggerCampaign",
            request,
            context,
            lambda: self._state.once("TriggerCampaign", request.idempotency_key, work),  # type: ignore[arg-type,return-value]
        )

    def _run(self, run_id: str) -> campaigns_pb2.Run:
        run = self._state.runs.get(run_id)
        if run is None:
            raise Refusal(grpc.StatusCode.NOT_FOUND, f"run {run_id!r} not found")
        return run

    async def GetRun(
        self, request: campaigns_pb2.GetRunRequest, context: Context
    ) -> campaigns_pb2.GetRunResponse:
        return await self._gate.unary(
            "GetRun",
            request,
            context,
            lambda: campaigns_pb2.GetRunResponse(run=self._run(request.id)),
        )

    async def ListRuns(
        self, request: campaigns_pb2.ListRunsRequest, context: Context
    ) -> campaigns_pb2.ListRunsResponse:
        def work() -> campaigns_pb2.ListRunsResponse:
            runs = [
                run
                for run in reversed(self._state.runs.values())
                if (not request.contact_id or run.contact_id == request.contact_id)
                and (not request.event or run.event == request.event)
                and (not request.status or run.status == request.status)
            ]
            items, token = page(runs, request.page_size, request.page_token, 50)
            return campaigns_pb2.ListRunsResponse(runs=items, next_page_token=token)

        return await self._gate.unary("ListRuns", request, context, work)

    async def WatchRun(
        self, request: campaigns_pb2.WatchRunRequest, context: Context
    ) -> AsyncIterator[campaigns_pb2.WatchRunResponse]:
        # Runs of the fake end as they start: the stream holds their final state only.
        run = await self._gate.unary("WatchRun", request, context, lambda: self._run(request.id))
        yield campaigns_pb2.WatchRunResponse(run=run)

    async def ListTriggers(
        self, request: campaigns_pb2.ListTriggersRequest, context: Context
    ) -> campaigns_pb2.ListTriggersResponse:
        def work() -> campaigns_pb2.ListTriggersResponse:
            events = sorted(self._state.triggers)
            if request.event:
                if request.event not in self._state.triggers:
                    raise Refusal(grpc.StatusCode.NOT_FOUND, f"no trigger for {request.event!r}")
                events = [request.event]
            reply = campaigns_pb2.ListTriggersResponse()
            for event in events:
                trigger = reply.triggers.add(event=event)
                for index, (connector, action) in enumerate(self._state.triggers[event]):
                    trigger.steps.add(index=index, connector=connector, action=action)
            return reply

        return await self._gate.unary("ListTriggers", request, context, work)

    async def GetVariantResults(
        self, request: campaigns_pb2.GetVariantResultsRequest, context: Context
    ) -> campaigns_pb2.GetVariantResultsResponse:
        def work() -> campaigns_pb2.GetVariantResultsResponse:
            if request.event not in self._state.triggers:
                raise Refusal(grpc.StatusCode.NOT_FOUND, f"no trigger for {request.event!r}")
            # The fake's triggers have no A/B variants.
            raise Refusal(
                grpc.StatusCode.FAILED_PRECONDITION, f"trigger {request.event!r} has no variants"
            )

        return await self._gate.unary("GetVariantResults", request, context, work)


class Connectors(connectors_pb2_grpc.ConnectorsServicer):
    def __init__(self, gate: Gate) -> None:
        self._gate, self._state = gate, gate.state

    async def ListConnectors(
        self, request: connectors_pb2.ListConnectorsRequest, context: Context
    ) -> connectors_pb2.ListConnectorsResponse:
        def work() -> connectors_pb2.ListConnectorsResponse:
            reply = connectors_pb2.ListConnectorsResponse()
            for name, actions in sorted(self._state.connectors().items()):
                reply.connectors.add(
                    name=name,
                    kind="fake",
                    actions=actions,
                    health=connectors_pb2.CONNECTOR_HEALTH_SERVING,
                )
            return reply

        return await self._gate.unary("ListConnectors", request, context, work)

    async def InvokeConnector(
        self, request: connectors_pb2.InvokeConnectorRequest, context: Context
    ) -> connectors_pb2.InvokeConnectorResponse:
        def work() -> connectors_pb2.InvokeConnectorResponse:
            if request.connector not in self._state.connectors():
                raise Refusal(grpc.StatusCode.NOT_FOUND, f"no connector {request.connector!r}")
            self._state.invocations.append(request)
            return connectors_pb2.InvokeConnectorResponse(result=request.payload)

        return await self._gate.unary("InvokeConnector", request, context, work)

    async def ListDeadLetters(
        self, request: connectors_pb2.ListDeadLettersRequest, context: Context
    ) -> connectors_pb2.ListDeadLettersResponse:
        def work() -> connectors_pb2.ListDeadLettersResponse:
            letters = [
                letter
                for letter in self._state.dead_letters
                if not request.connector or letter.connector == request.connector
            ]
            items, token = page(letters, request.page_size, request.page_token, 100)
            return connectors_pb2.ListDeadLettersResponse(dead_letters=items, next_page_token=token)

        return await self._gate.unary("ListDeadLetters", request, context, work)

    async def RedriveDeadLetters(
        self, request: connectors_pb2.RedriveDeadLettersRequest, context: Context
    ) -> connectors_pb2.RedriveDeadLettersResponse:
        def work() -> connectors_pb2.RedriveDeadLettersResponse:
            ids = set(request.ids.ids)
            chosen = [
                letter
                for letter in self._state.dead_letters
                if request.all
                or (request.connector and letter.connector == request.connector)
                or letter.id in ids
            ]
            # Redriven steps succeed at once in the fake: they leave the dead letters.
            self._state.dead_letters[:] = [
                letter for letter in self._state.dead_letters if letter not in chosen
            ]
            return connectors_pb2.RedriveDeadLettersResponse(redriven=chosen)

        return await self._gate.unary("RedriveDeadLetters", request, context, work)

    async def BackfillConnector(
        self, request: connectors_pb2.BackfillConnectorRequest, context: Context
    ) -> AsyncIterator[connectors_pb2.BackfillConnectorResponse]:
        def work() -> connectors_pb2.BackfillConnectorResponse:
            if request.connector not in self._state.connectors():
                raise Refusal(
                    grpc.StatusCode.NOT_FOUND, f"no connector named {request.connector!r}"
                )
            # The fake delivers at once: every stored contact, sent.
            count = len(self._state.contacts)
            return connectors_pb2.BackfillConnectorResponse(
                connector=request.connector, queued=count, finished=count, succeeded=count,
                done=True,
            )

        yield await self._gate.unary("BackfillConnector", request, context, work)


def add_services(server: grpc.aio.Server, gate: Gate) -> None:
    """Registers the four fake services on `server`."""
    contacts_pb2_grpc.add_ContactSyncServicer_to_server(ContactSync(gate), server)
    leads_pb2_grpc.add_LeadScoringServicer_to_server(LeadScoring(gate), server)
    campaigns_pb2_grpc.add_CampaignTriggersServicer_to_server(CampaignTriggers(gate), server)
    connectors_pb2_grpc.add_ConnectorsServicer_to_server(Connectors(gate), server)
