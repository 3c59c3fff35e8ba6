"""With telemetry off, log lines of a call still carry a trace id (and no span is made)."""

from __future__ import annotations

import re

import pytest

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.server.domain.contacts import ContactService
from switchboard.server.interceptors.call_ids import trace_id_from
from switchboard.server.observability import logs
from switchboard.v1 import contacts_pb2

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """The ids `logs.trace_ids()` returns inside each GetContact handler."""
    found: list[tuple[str, str]] = []

    async def get(self: ContactService, req: contacts_pb2.GetContactRequest) -> bytes:
        found.append(logs.trace_ids())
        contact = contacts_pb2.Contact(id="c_01M847PNZXWYG14T8DV5Y61M89", email=req.email)
        return contact.SerializeToString()

    monkeypatch.setattr(ContactService, "get_wire", get)  # what GetContact calls
    return found


async def test_the_callers_traceparent_is_used(app: App, seen: list[tuple[str, str]]) -> None:
    assert not app.telemetry.active
    header = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"
    async with Switchboard(f"127.0.0.1:{app.port}", metadata={"traceparent": header}) as sb:
        await sb.contacts.get(email="a@example.com")
    assert seen == [(CALLER_TRACE, "")]


async def test_each_call_gets_a_fresh_id(sb: Switchboard, seen: list[tuple[str, str]]) -> None:
    await sb.contacts.get(email="a@example.com")
    await sb.contacts.get(email="b@example.com")
    ids = [trace_id for trace_id, _ in seen]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert ids[0] != ids[1]
    assert logs.trace_ids() == ("", "")  # nothing leaks outside the calls


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("garbage", id="malformed"),
        pytest.param(f"00-{'0' * 32}-00f067aa0ba902b7-01", id="all-zero-trace-id"),
    ],
)
def test_invalid_traceparent_gets_a_new_id(header: str) -> None:
    found = trace_id_from([("traceparent", header)])
    assert re.fullmatch(r"[0-9a-f]{32}", found)
    assert found != "0" * 32
