from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from switchboard.client import Switchboard

from .conftest import API_KEY
from .fakes import Backend


async def _import(sb: Switchboard) -> None:
    await sb.contacts.import_([[{"email": "a@b.c"}]])


async def _score_many(sb: Switchboard) -> None:
    async for _ in sb.leads.score_many(["c_1"]):
        pass


async def _watch(sb: Switchboard) -> None:
    async for _ in sb.campaigns.watch("r_1"):
        pass


@pytest.mark.parametrize(
    ("method", "call"),
    [
        pytest.param("GetContact", lambda sb: sb.contacts.get(id="c_1"), id="unary"),
        pytest.param("ImportContacts", _import, id="client-stream"),
        pytest.param("WatchRun", _watch, id="server-stream"),
        pytest.param("ScoreLeads", _score_many, id="bidi-stream"),
    ],
)
async def test_every_call_carries_the_api_key_and_metadata(
    sb: Switchboard,
    backend: Backend,
    method: str,
    call: Callable[[Switchboard], Awaitable[Any]],
) -> None:
    await call(sb)

    (received,) = [r for r in backend.received if r.method == method]
    assert received.metadata["authorization"] == f"Bearer {API_KEY}"
    assert received.metadata["x-tenant"] == "acme"


async def test_no_api_key_sends_no_authorization(address: str, backend: Backend) -> None:
    async with Switchboard(address) as sb:
        await sb.contacts.get(id="c_1")

    assert "authorization" not in backend.received[-1].metadata
