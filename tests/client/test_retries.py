"""Retries come from the channel's service config; idempotency keys make them safe."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from switchboard.client import Switchboard, SwitchboardError, UnavailableError

from .fakes import Backend

Write = Callable[[Switchboard], Awaitable[Any]]

WRITES = [
    pytest.param("UpsertContact", lambda sb: sb.contacts.upsert(email="a@b.c"), id="upsert"),
    pytest.param("DeleteContact", lambda sb: sb.contacts.delete(id="c_1"), id="delete"),
    pytest.param(
        "RecordActivity",
        lambda sb: sb.leads.record_activity(id="c_1", type="page_view"),
        id="record_activity",
    ),
    pytest.param(
        "UpdateLeadStatus",
        lambda sb: sb.leads.update_status(id="c_1", status="sql"),
        id="update_status",
    ),
    pytest.param(
        "TriggerCampaign", lambda sb: sb.campaigns.trigger("e", contact_id="c_1"), id="trigger"
    ),
    pytest.param("InvokeConnector", lambda sb: sb.connectors.invoke("fake", "echo"), id="invoke"),
]


def _fail_first(backend: Backend, method: str, code: grpc.StatusCode) -> None:
    async def fail_first(request: Any, context: grpc.aio.ServicerContext) -> None:
        if len(backend.requests(method)) == 1:
            await context.abort(code, "warming up")

    backend.before[method] = fail_first


@pytest.mark.parametrize(("method", "write"), WRITES)
async def test_a_retried_write_resends_its_idempotency_key(
    sb: Switchboard, backend: Backend, method: str, write: Write
) -> None:
    _fail_first(backend, method, grpc.StatusCode.UNAVAILABLE)

    await write(sb)

    first, retry = backend.requests(method)
    assert len(first.idempotency_key) == 32
    assert retry.idempotency_key == first.idempotency_key


@pytest.mark.parametrize(("method", "write"), WRITES)
async def test_each_write_gets_its_own_key(
    sb: Switchboard, backend: Backend, method: str, write: Write
) -> None:
    await write(sb)
    await write(sb)

    first, second = backend.requests(method)
    assert first.idempotency_key != second.idempotency_key


async def test_the_callers_key_is_kept(sb: Switchboard, backend: Backend) -> None:
    await sb.contacts.upsert(email="a@b.c", idempotency_key="order-42")

    assert backend.last("UpsertContact").idempotency_key == "order-42"


@pytest.mark.parametrize(
    ("retries", "attempts"),
    [
        pytest.param(0, 1, id="no-retries"),
        pytest.param(1, 2, id="one-retry"),
        pytest.param(3, 4, id="default"),
    ],
)
async def test_unavailable_is_retried_then_raised(
    address: str, backend: Backend, retries: int, attempts: int
) -> None:
    async def unavailable(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAVAILABLE, "down")

    backend.before["GetContact"] = unavailable

    async with Switchboard(address, retries=retries) as sb:
        with pytest.raises(UnavailableError):
            await sb.contacts.get(id="c_1")

    assert len(backend.requests("GetContact")) == attempts


async def test_other_codes_are_not_retried(sb: Switchboard, backend: Backend) -> None:
    _fail_first(backend, "GetContact", grpc.StatusCode.INTERNAL)

    with pytest.raises(SwitchboardError):
        await sb.contacts.get(id="c_1")

    assert len(backend.requests("GetContact")) == 1
