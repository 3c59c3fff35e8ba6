"""Connectors: listing with health, and direct invocation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
import pytest

from switchboard.client import (
    FailedPreconditionError,
    NotFoundError,
    Switchboard,
    SwitchboardError,
    UnavailableError,
)
from switchboard.server.app.build import App
from switchboard.server.config.settings import defaults
from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError
from switchboard.v1 import connectors_pb2, connectors_pb2_grpc

StartApp = Callable[..., Awaitable[App]]


def _fake(app: App) -> FakeConnector:
    fake = app.connectors["fake"]
    assert isinstance(fake, FakeConnector)
    return fake


async def test_list_connectors_with_actions_and_health(sb: Switchboard, app: App) -> None:
    _fake(app).set_healthy(False)
    infos = {c.name: c for c in await sb.connectors.list()}
    assert set(infos) == set(defaults()["connectors"])
    assert infos["esp"].kind == "sandbox_esp"
    assert "lists.subscribe" in infos["esp"].actions
    assert infos["crm"].health == connectors_pb2.CONNECTOR_HEALTH_SERVING
    assert infos["fake"].health == connectors_pb2.CONNECTOR_HEALTH_NOT_SERVING
    assert infos["fake"].health_detail
    assert infos["crm"].checked_at.seconds > 0


async def test_invoke_returns_the_result_and_passes_the_key(sb: Switchboard, app: App) -> None:
    result = await sb.connectors.invoke(
        "fake", "echo", payload={"params": {"x": 1}}, idempotency_key="inv-1"
    )
    assert result["ok"] is True
    assert result["echo"]["x"] == 1
    replay = await sb.connectors.invoke(
        "fake", "echo", payload={"params": {"x": 1}}, idempotency_key="inv-1"
    )
    assert replay == result
    calls = _fake(app).calls
    assert len(calls) == 1  # the replay did not reach the connector
    assert calls[0][2].idempotency_key == "inv-1"
    events = await app.store.read(lambda tx: tx.events("fake"))
    assert [t for t, _ in events] == ["connector.invoked"]


async def test_invoke_a_builtin_action(sb: Switchboard) -> None:
    stored = await sb.contacts.upsert(email="x@example.com", consents={"personalization": True})
    result = await sb.connectors.invoke(
        "personalization",
        "offers.show",
        payload={"contact": {"id": stored.contact.id}, "params": {"segment": "customer"}},
    )
    assert result["offer"] == "LOYALTY15"


@pytest.mark.parametrize(
    ("connector", "action", "needle"),
    [
        pytest.param("nope", "echo", "configured:", id="unknown-connector"),
        pytest.param("fake", "nope", "its actions: echo", id="unknown-action"),
    ],
)
async def test_invoke_unknown_is_not_found(
    sb: Switchboard, connector: str, action: str, needle: str
) -> None:
    with pytest.raises(NotFoundError, match=needle):
        await sb.connectors.invoke(connector, action)


@pytest.mark.parametrize(
    ("failure", "error"),
    [
        pytest.param(
            PermanentConnectorError("bad template"), FailedPreconditionError, id="permanent"
        ),
        pytest.param(RetryableConnectorError("vendor down"), UnavailableError, id="retryable"),
        pytest.param(RuntimeError("secret internals"), UnavailableError, id="unexpected"),
    ],
)
async def test_invoke_failures_map_to_status(
    app: App, failure: Exception, error: type[SwitchboardError]
) -> None:
    _fake(app).script("echo", failure)
    # retries=0: the client would otherwise retry UNAVAILABLE and see the scripted success
    async with Switchboard(f"127.0.0.1:{app.port}", retries=0) as sb:
        with pytest.raises(error) as info:
            await sb.connectors.invoke("fake", "echo", idempotency_key="fail-1")
        assert "secret internals" not in info.value.message
        # a failure is not stored under the key: a retry reaches the connector and succeeds
        assert (await sb.connectors.invoke("fake", "echo", idempotency_key="fail-1"))["ok"] is True


async def test_client_retries_unavailable_with_the_same_key(sb: Switchboard, app: App) -> None:
    _fake(app).script("echo", RetryableConnectorError("blip"))
    result = await sb.connectors.invoke("fake", "echo", idempotency_key="blip-1")
    assert result["ok"] is True
    assert [ctx.idempotency_key for _, _, ctx in _fake(app).calls] == ["blip-1", "blip-1"]


async def test_invoke_timeout_is_unavailable(start_app: StartApp) -> None:
    app = await start_app(
        connectors={"fake": {"kind": "fake", "timeout_s": 0.1, "options": {"latency_s": 2}}},
        triggers={},
    )
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        with pytest.raises(UnavailableError, match="timed out"):
            await sb.connectors.invoke("fake", "echo")
        # the server keeps serving after the timeout
        assert (await sb.connectors.list())[0].name == "fake"


async def test_invoke_never_outlives_the_callers_deadline(start_app: StartApp) -> None:
    connectors = {"fake": {"kind": "fake", "timeout_s": 30.0, "options": {"latency_s": 5.0}}}
    app = await start_app(connectors=connectors, triggers={})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        stub = connectors_pb2_grpc.ConnectorsStub(ch)
        request = connectors_pb2.InvokeConnectorRequest(connector="fake", action="echo")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.InvokeConnector(request, timeout=1.0)
    # The server gave up in time to answer, instead of letting the caller's deadline pass.
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "timed out" in (info.value.details() or "")
    [(_, _, ctx)] = _fake(app).calls
    assert ctx.deadline_s is not None
    assert ctx.deadline_s < 1.0
