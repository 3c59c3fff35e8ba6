"""The server's log lines as an operator reads them (JSON): one per call, a warning per dead
letter, an error with its traceback per INTERNAL; never a person's email or phone."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

from switchboard.client import Switchboard, SwitchboardError
from switchboard.server.app.build import App, build_app
from switchboard.server.auth.api_keys import generate_key, hash_key
from switchboard.server.common.scopes import ALL_SCOPES
from switchboard.server.config.settings import Settings
from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.domain.contacts import ContactService
from switchboard.server.errors import PermanentConnectorError
from switchboard.server.errors import SwitchboardError as ServerError
from switchboard.server.observability.telemetry import Telemetry
from switchboard.v1 import contacts_pb2, contacts_pb2_grpc
from tests.observability.conftest import eventually

StartApp = Callable[..., Awaitable[App]]
KEY = generate_key()
CALLER = "web-shop"
AUTH = {
    "enabled": True,
    "callers": {CALLER: {"scopes": sorted(ALL_SCOPES), "key_sha256": [hash_key(KEY)]}},
}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
METADATA = (
    ("authorization", f"Bearer {KEY}"),
    ("traceparent", f"00-{TRACE}-00f067aa0ba902b7-01"),
)
ACCESS = "switchboard.access"


def _lines(log: io.StringIO, logger: str | None = None) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    return [line for line in lines if logger is None or line["logger"] == logger]


@pytest.fixture(params=[pytest.param(False, id="telemetry-off"), pytest.param(True, id="otel")])
async def authed_app(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings]
) -> AsyncIterator[App]:
    """A server with API-key auth; with and without OpenTelemetry spans (the trace id of
    a log line comes from the span, or from the caller's traceparent when there is none)."""
    telemetry = Telemetry(TracerProvider(), MeterProvider()) if request.param else None
    app = await build_app(make_settings(auth=AUTH), telemetry=telemetry)
    await app.start()
    try:
        yield app
    finally:
        await app.stop(grace_s=1.0)
        if telemetry is not None:
            telemetry.shutdown()


async def test_one_line_per_call_with_code_duration_caller_and_trace(
    authed_app: App, json_log: io.StringIO
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{authed_app.port}") as channel:
        stub = contacts_pb2_grpc.ContactSyncStub(channel)
        contact = contacts_pb2.Contact(
            email="ada.lovelace@example.com", phone="+14155550100", first_name="Lovelace"
        )
        await stub.UpsertContact(
            contacts_pb2.UpsertContactRequest(contact=contact), metadata=METADATA
        )
        with pytest.raises(grpc.aio.AioRpcError):  # NOT_FOUND, naming the email it looked for
            await stub.GetContact(
                contacts_pb2.GetContactRequest(email="grace.hopper@example.com"), metadata=METADATA
            )
        with pytest.raises(grpc.aio.AioRpcError):  # no credentials
            await stub.GetContact(contacts_pb2.GetContactRequest(id="c_1"))
    # An aborted call's status leaves before its line is written: wait for the line.
    access = await eventually(lambda: _lines(json_log, ACCESS), lambda a: len(a) >= 3)
    assert [(a["method"], a["code"], a["caller"], a["level"]) for a in access] == [
        ("/switchboard.v1.ContactSync/UpsertContact", "OK", CALLER, "INFO"),
        ("/switchboard.v1.ContactSync/GetContact", "NOT_FOUND", CALLER, "INFO"),
        ("/switchboard.v1.ContactSync/GetContact", "UNAUTHENTICATED", "-", "INFO"),
    ]
    assert [a["trace_id"] for a in access[:2]] == [TRACE, TRACE]
    assert all(0 < a["duration_ms"] < 10_000 for a in access)
    assert access[0]["message"].startswith("/switchboard.v1.ContactSync/UpsertContact OK ")
    everything = json_log.getvalue()
    for personal in ("ada.lovelace", "grace.hopper", "4155550100", "Lovelace", KEY):
        assert personal not in everything


async def test_health_checks_are_not_logged_at_info(app: App, json_log: io.StringIO) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
        await contacts_pb2_grpc.ContactSyncStub(channel).UpsertContact(
            contacts_pb2.UpsertContactRequest(contact=contacts_pb2.Contact(email="h@example.com"))
        )
    access = await eventually(lambda: _lines(json_log, ACCESS))
    assert [a["method"] for a in access] == ["/switchboard.v1.ContactSync/UpsertContact"]


async def test_access_log_can_be_turned_off(start_app: StartApp, json_log: io.StringIO) -> None:
    app = await start_app(access_log=False)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        await sb.contacts.upsert(email="quiet@example.com")
    assert _lines(json_log, ACCESS) == []


class _Unlisted(ServerError):
    """A project error the status table does not list: it stands for INTERNAL."""


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(RuntimeError("pool broke for bob.smith@example.com"), id="unknown"),
        pytest.param(_Unlisted("odd state for bob.smith@example.com"), id="unlisted-error"),
    ],
)
async def test_every_internal_is_logged_once_with_its_traceback(
    sb: Switchboard,
    json_log: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
) -> None:
    async def boom(self: ContactService, req: object) -> None:
        raise error

    monkeypatch.setattr(ContactService, "get_wire", boom)  # what GetContact calls
    with pytest.raises(SwitchboardError) as info:
        await sb.contacts.get(email="x@example.com")
    assert info.value.code == grpc.StatusCode.INTERNAL
    assert info.value.message == "internal error; the server logged the details"
    access = await eventually(lambda: _lines(json_log, ACCESS))
    errors = [line for line in _lines(json_log) if line["level"] == "ERROR"]
    assert len(errors) == 1
    assert "GetContact" in errors[0]["message"]
    assert "Traceback" in errors[0]["error"]
    assert type(error).__name__ in errors[0]["error"]
    assert "b***@example.com" in errors[0]["error"]
    assert "bob.smith" not in json_log.getvalue()
    assert [a["code"] for a in access] == ["INTERNAL"]
    assert access[0]["trace_id"] == errors[0]["trace_id"] != ""


async def test_a_dead_letter_is_one_warning(start_app: StartApp, json_log: io.StringIO) -> None:
    connectors = {"fake": {"kind": "fake", "max_attempts": 3}}
    triggers = {"demo.ping": {"steps": [{"connector": "fake", "action": "echo"}]}}
    app = await start_app(connectors=connectors, triggers=triggers)
    fake = app.connectors["fake"]
    assert isinstance(fake, FakeConnector)
    fake.script("echo", PermanentConnectorError("422 rejected carol.jones@example.com"))
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger("demo.ping", email="carol.jones@example.com", wait=True)
    warnings = [line for line in _lines(json_log) if line["level"] == "WARNING"]
    assert len(warnings) == 1
    dead = warnings[0]
    assert (dead["run_id"], dead["step"], dead["connector"], dead["action"]) == (
        run.id,
        0,
        "fake",
        "echo",
    )
    assert (dead["reason"], dead["attempts"]) == ("permanent_error", 1)
    assert "dead-lettered" in dead["message"]
    assert "c***@example.com" in dead["message"]
    assert "carol.jones" not in json_log.getvalue()
