"""esp `email.send` against a real aiosmtpd server on 127.0.0.1 (plain and STARTTLS)."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Awaitable, Callable, Iterator
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.server.config.settings import defaults
from switchboard.server.connectors.base import InvokeContext, JsonDict
from switchboard.server.connectors.esp import EspConnector
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError
from switchboard.v1 import campaigns_pb2

TEMPLATES = {"welcome": {"subject": "Welcome, $first_name", "text": "Hi $first_name!\n"}}
CTX = InvokeContext(idempotency_key="r_1:3")


class Inbox:
    """An aiosmtpd handler that keeps messages, or answers with a scripted reply."""

    def __init__(self) -> None:
        self.messages: list[Envelope] = []
        self.reply = "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.reply.startswith("250"):
            self.messages.append(envelope)
        return self.reply


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def _esp(port: int, **smtp: Any) -> EspConnector:
    options = {
        "smtp": {"host": "127.0.0.1", "port": port, "sender": "news@example.com", **smtp},
        "templates": TEMPLATES,
    }
    return EspConnector("esp", options, InMemoryState())


def _payload(opt_in: bool = True, **params: Any) -> JsonDict:
    contact = {"id": "c_1", "email": "nia@example.com", "first_name": "Nia"}
    contact["consent"] = {"opt_in": opt_in}  # type: ignore[assignment]
    return {"contact": contact, "params": {"template": "welcome", **params}}


async def test_sends_the_welcome_email(inbox: tuple[Inbox, int]) -> None:
    handler, port = inbox
    esp = _esp(port, security="none")
    result = await esp.invoke("email.send", _payload(), CTX)
    [envelope] = handler.messages
    msg = message_from_bytes(envelope.original_content or b"")
    assert envelope.rcpt_tos == ["nia@example.com"]
    assert msg["Subject"] == "Welcome, Nia"
    assert msg.get_payload().strip() == "Hi Nia!"
    assert msg["Idempotency-Key"] == "r_1:3"
    assert result == {"sent": True, "message_id": msg["Message-ID"], "to": "nia@example.com"}


async def test_a_retried_step_does_not_send_twice(inbox: tuple[Inbox, int]) -> None:
    handler, port = inbox
    esp = _esp(port, security="none")
    first = await esp.invoke("email.send", _payload(), CTX)
    again = await esp.invoke("email.send", _payload(), CTX)
    assert len(handler.messages) == 1
    assert again == {**first, "already_sent": True}


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        pytest.param("451 try again later", RetryableConnectorError, id="451"),
        pytest.param("554 rejected", PermanentConnectorError, id="554"),
    ],
)
async def test_smtp_replies_are_classified(
    inbox: tuple[Inbox, int], reply: str, error: type[Exception]
) -> None:
    handler, port = inbox
    handler.reply = reply
    with pytest.raises(error, match=reply[:3]):
        await _esp(port, security="none").invoke("email.send", _payload(), CTX)


async def test_unreachable_server_is_retryable() -> None:
    esp = _esp(_free_port(), security="none", timeout_s=2)
    with pytest.raises(RetryableConnectorError, match="unreachable"):
        await esp.invoke("email.send", _payload(), CTX)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param(_payload(template="nope"), "no template", id="unknown-template"),
    ],
)
async def test_refusals_are_permanent(
    inbox: tuple[Inbox, int], payload: JsonDict, message: str
) -> None:
    handler, port = inbox
    with pytest.raises(PermanentConnectorError, match=message):
        await _esp(port, security="none").invoke("email.send", payload, CTX)
    assert handler.messages == []


async def test_missing_placeholder_is_permanent(inbox: tuple[Inbox, int]) -> None:
    _, port = inbox
    options = {
        "smtp": {"host": "127.0.0.1", "port": port, "sender": "n@example.com", "security": "none"},
        "templates": {"welcome": {"subject": "Hi $nickname", "text": "x"}},
    }
    esp = EspConnector("esp", options, InMemoryState())
    with pytest.raises(PermanentConnectorError, match="nickname"):
        await esp.invoke("email.send", _payload(), CTX)


async def test_starttls_verifies_the_server(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    handler = Inbox()
    port = _free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, tls_context=server_ctx, require_starttls=True
    )
    controller.start()
    try:
        await _esp(port, security="starttls", ca_file=str(ca_file)).invoke(
            "email.send", _payload(), CTX
        )
        with pytest.raises(PermanentConnectorError, match="TLS verification"):
            await _esp(port, security="starttls").invoke(
                "email.send", _payload(), InvokeContext(idempotency_key="other")
            )
    finally:
        controller.stop()
    assert len(handler.messages) == 1


def test_email_send_needs_smtp() -> None:
    plain = EspConnector("esp", {"templates": TEMPLATES}, InMemoryState())
    assert "email.send" not in plain.actions
    assert "email.send" in _esp(25).actions


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"smtp": {"host": "h", "port": 25}}, "smtp.sender", id="no-sender"),
        pytest.param(
            {"smtp": {"host": "h", "port": 25, "sender": "s", "security": "ssl3"}},
            "security",
            id="bad-security",
        ),
        pytest.param({"templates": {"w": {"subject": "x"}}}, "subject, text", id="bad-template"),
        pytest.param({"lists": []}, "unknown", id="unknown-option"),
    ],
)
def test_bad_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EspConnector("esp", options, InMemoryState())


async def test_newsletter_flow_sends_the_welcome_email(
    inbox: tuple[Inbox, int], start_app: Callable[..., Awaitable[App]]
) -> None:
    handler, port = inbox
    connectors = dict(defaults()["connectors"])
    smtp = {"host": "127.0.0.1", "port": port, "sender": "news@example.com", "security": "none"}
    connectors["esp"] = {"kind": "sandbox_esp", "options": {"smtp": smtp, "templates": TEMPLATES}}
    signup = defaults()["triggers"]["newsletter.signup"]
    welcome = {"connector": "esp", "action": "email.send", "params": {"template": "welcome"}}
    triggers = {"newsletter.signup": {"steps": [*signup["steps"], welcome]}}
    app = await start_app(connectors=connectors, triggers=triggers)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger(
            "newsletter.signup",
            email="ada@example.com",
            contact={"first_name": "Ada", "consent": True},
            wait=True,
        )
    assert run.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
    [envelope] = handler.messages
    msg = message_from_bytes(envelope.original_content or b"")
    assert msg["Subject"] == "Welcome, Ada"
    assert msg["Idempotency-Key"] == f"{run.id}:3"
