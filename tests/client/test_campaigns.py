from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from switchboard.client import NotFoundError, Switchboard
from switchboard.v1 import campaigns_pb2, contacts_pb2

from .fakes import Backend


async def test_trigger_maps_event_contact_and_attributes(sb: Switchboard, backend: Backend) -> None:
    run = await sb.campaigns.trigger(
        "newsletter.signup",
        email="ada@example.com",
        contact={"first_name": "Ada", "lists": ["newsletter"]},
        attributes={"offer": "welcome10", "amount": 12.5},
    )

    request = backend.last("TriggerCampaign")
    assert request.event == "newsletter.signup"
    assert request.contact == contacts_pb2.Contact(
        email="ada@example.com", first_name="Ada", lists=["newsletter"]
    )
    assert json_format.MessageToDict(request.attributes) == {"offer": "welcome10", "amount": 12.5}
    assert not request.wait_for_completion
    assert len(request.idempotency_key) == 32
    assert isinstance(run, campaigns_pb2.Run)
    assert (run.id, run.status) == ("r_new", campaigns_pb2.RUN_STATUS_PENDING)


async def test_trigger_can_wait_for_the_run(sb: Switchboard, backend: Backend) -> None:
    run = await sb.campaigns.trigger("purchase", contact_id="c_1", wait=True)

    request = backend.last("TriggerCampaign")
    assert request.wait_for_completion
    assert request.contact.id == "c_1"
    assert run.status == campaigns_pb2.RUN_STATUS_SUCCEEDED


async def test_trigger_needs_an_event(sb: Switchboard) -> None:
    with pytest.raises(TypeError, match="event"):
        await sb.campaigns.trigger(email="ada@example.com")


async def test_get_run_returns_the_run(sb: Switchboard, backend: Backend) -> None:
    run = await sb.campaigns.get_run("r_1")

    assert backend.last("GetRun").id == "r_1"
    assert run.status == campaigns_pb2.RUN_STATUS_RUNNING


async def test_list_runs_maps_filters(sb: Switchboard, backend: Backend) -> None:
    page = await sb.campaigns.list_runs(
        contact_id="c_1", event="purchase", status="failed", page_size=2
    )

    assert backend.last("ListRuns") == campaigns_pb2.ListRunsRequest(
        contact_id="c_1", event="purchase", status=campaigns_pb2.RUN_STATUS_FAILED, page_size=2
    )
    assert page.next_page_token == "2"


async def test_iter_runs_follows_next_page_token(sb: Switchboard, backend: Backend) -> None:
    ids = [run.id async for run in sb.campaigns.iter_runs(page_size=2)]

    assert ids == ["r_0", "r_1", "r_2"]
    assert [r.page_token for r in backend.requests("ListRuns")] == ["", "2"]


async def test_watch_yields_the_run_until_it_ends(sb: Switchboard, backend: Backend) -> None:
    statuses = [run.status async for run in sb.campaigns.watch("r_1")]

    assert backend.last("WatchRun").id == "r_1"
    assert statuses == [
        campaigns_pb2.RUN_STATUS_PENDING,
        campaigns_pb2.RUN_STATUS_RUNNING,
        campaigns_pb2.RUN_STATUS_SUCCEEDED,
    ]


async def test_watch_translates_stream_errors(sb: Switchboard) -> None:
    with pytest.raises(NotFoundError, match="run r_unknown not found"):
        async for _ in sb.campaigns.watch("r_unknown"):
            pass


async def test_closing_watch_early_ends_the_call(sb: Switchboard, backend: Backend) -> None:
    ended = asyncio.Event()

    async def first_then_hang(
        request: Any, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[campaigns_pb2.WatchRunResponse]:
        try:
            yield campaigns_pb2.WatchRunResponse(run=campaigns_pb2.Run(id=request.id))
            await asyncio.Event().wait()
        finally:
            ended.set()

    backend.override["WatchRun"] = first_then_hang

    async with aclosing(sb.campaigns.watch("r_1")) as runs:
        async for run in runs:
            assert run.id == "r_1"
            break

    await ended.wait()  # the server saw the call end although the run never did
