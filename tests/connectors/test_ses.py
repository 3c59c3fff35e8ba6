"""The ses connector against moto's AWS emulator on 127.0.0.1, and against a scripted peer
that checks the SendEmail request as SES v2 documents it and replays SES's error answers."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import boto3
import httpx
import pytest
from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer
from moto.ses import ses_backends
from moto.ses.models import Message

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.server.config.settings import defaults
from switchboard.server.connectors.base import InvokeContext, JsonDict
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.connectors.ses import SesConnector, step_tag
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError
from switchboard.v1 import campaigns_pb2
from tests.connectors.http_peer import HttpPeer, Reply

REGION = "eu-west-1"
SENDER = "news@example.com"
TEMPLATES = {"welcome": {"subject": "Welcome, $first_name", "text": "Hi $first_name!\n"}}
CTX = InvokeContext(idempotency_key="r_1:3")


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean emulator, and the credentials the connector names by reference."""
    httpx.post(f"{moto_url}/moto-api/reset").raise_for_status()
    monkeypatch.setenv("SB_TEST_AWS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("SB_TEST_AWS_SECRET", "secret-example")
    return moto_url


def verify_sender(url: str, identity: str = SENDER) -> None:
    client = boto3.client(
        "sesv2",
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret-example",
    )
    client.create_email_identity(EmailIdentity=identity)


def sent_messages() -> list[Message]:
    """What the emulated SES accepted (moto's SES backend, shared by v1 and v2)."""
    return list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)


def options(url: str, **extra: Any) -> JsonDict:
    return {
        "region": REGION,
        "sender": SENDER,
        "endpoint_url": url,
        "access_key_id": "env:SB_TEST_AWS_KEY_ID",
        "secret_access_key": "env:SB_TEST_AWS_SECRET",
        "templates": TEMPLATES,
        **extra,
    }


def payload(contact_id: str = "c1", opt_in: Any = True, **params: Any) -> JsonDict:
    contact = {
        "id": contact_id,
        "email": f"{contact_id}@example.org",
        "first_name": "Ada",
        "consent": {"opt_in": opt_in},
    }
    return {
        "event": "newsletter.signup",
        "contact": contact,
        "params": {"template": "welcome", **params},
    }


@pytest.fixture
async def ses(aws: str) -> AsyncIterator[SesConnector]:
    connector = SesConnector("mail", options(aws), InMemoryState())
    yield connector
    await connector.aclose()


async def test_sends_the_rendered_email(aws: str, ses: SesConnector) -> None:
    verify_sender(aws)

    result = await ses.invoke("email.send", payload(), CTX)

    [message] = sent_messages()
    assert (message.source, message.subject, message.body) == (SENDER, "Welcome, Ada", "Hi Ada!\n")
    assert message.destinations == {"ToAddresses": ["c1@example.org"]}
    assert result == {"sent": True, "message_id": message.id, "to": "c1@example.org"}


async def test_a_retried_step_does_not_send_twice(aws: str, ses: SesConnector) -> None:
    verify_sender(aws)

    first = await ses.invoke("email.send", payload(), CTX)
    again = await ses.invoke("email.send", payload(), CTX)
    other_step = await ses.invoke("email.send", payload(), InvokeContext(idempotency_key="r_2:0"))

    assert len(sent_messages()) == 2
    assert again == {**first, "already_sent": True}
    assert other_step["message_id"] != first["message_id"]


async def test_unverified_sender_is_permanent(ses: SesConnector) -> None:
    with pytest.raises(PermanentConnectorError, match=r"MessageRejected.*not verified"):
        await ses.invoke("email.send", payload(), CTX)
    assert sent_messages() == []


async def test_no_opt_in_is_refused_unless_the_step_waives_it(aws: str, ses: SesConnector) -> None:
    verify_sender(aws)

    with pytest.raises(PermanentConnectorError, match="has not opted in"):
        await ses.invoke("email.send", payload(opt_in=False), CTX)
    assert sent_messages() == []
    await ses.invoke("email.send", payload(opt_in=False, require_consent=False), CTX)
    assert len(sent_messages()) == 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        pytest.param({"template": "nope"}, "no template 'nope'", id="unknown-template"),
        pytest.param({"template": None}, "'template' is required", id="no-template"),
    ],
)
async def test_bad_steps_are_permanent(ses: SesConnector, params: JsonDict, message: str) -> None:
    with pytest.raises(PermanentConnectorError, match=message):
        await ses.invoke("email.send", {**payload(), "params": params}, CTX)


async def test_erase_forgets_what_was_sent_to_the_contact(aws: str, ses: SesConnector) -> None:
    verify_sender(aws)
    await ses.invoke("email.send", payload("c1"), CTX)
    await ses.invoke("email.send", payload("c1"), InvokeContext(idempotency_key="r_2:0"))
    await ses.invoke("email.send", payload("c10"), CTX)

    assert await ses.invoke("contacts.erase", payload("c1"), CTX) == {"erased": 2}
    assert await ses.invoke("contacts.erase", payload("c1"), CTX) == {"erased": 0}
    kept = await ses.invoke("email.send", payload("c10"), CTX)
    assert kept["already_sent"] is True


async def test_health_needs_a_verified_sender(aws: str, ses: SesConnector) -> None:
    with pytest.raises(RetryableConnectorError, match="not verified"):
        await ses.health()
    verify_sender(aws, "example.com")  # a verified domain covers its addresses

    await ses.health()


async def test_unreachable_endpoint_is_retryable(aws: str) -> None:
    with socket.socket() as sock:  # a port that was free: nothing listens there now
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    connector = SesConnector("mail", options(url, timeout_s=2), InMemoryState())
    try:
        with pytest.raises(RetryableConnectorError, match="SES unreachable"):
            await connector.invoke("email.send", payload(), CTX)
    finally:
        await connector.aclose()


@pytest.fixture
def peer() -> Iterator[HttpPeer]:
    with HttpPeer() as running:
        yield running


async def test_the_request_is_the_documented_send_email(
    peer: HttpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SB_TEST_AWS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("SB_TEST_AWS_SECRET", "secret-example")
    peer.script.append(Reply(200, b'{"MessageId":"m-1"}', {"content-type": "application/json"}))
    extra = {"configuration_set": "marketing", "reply_to": ["help@example.com"]}
    connector = SesConnector(
        "mail",
        options(f"http://127.0.0.1:{peer.port}", tags={"team": "growth"}, **extra),
        InMemoryState(),
    )
    try:
        result = await connector.invoke("email.send", payload(), CTX)
    finally:
        await connector.aclose()

    [request] = peer.received
    assert request.path == "/v2/email/outbound-emails"
    assert request.headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert f"/{REGION}/ses/aws4_request" in request.headers["authorization"]
    assert json.loads(request.body) == {
        "FromEmailAddress": SENDER,
        "Destination": {"ToAddresses": ["c1@example.org"]},
        "ReplyToAddresses": ["help@example.com"],
        "ConfigurationSetName": "marketing",
        "Content": {
            "Simple": {
                "Subject": {"Data": "Welcome, Ada", "Charset": "UTF-8"},
                "Body": {"Text": {"Data": "Hi Ada!\n", "Charset": "UTF-8"}},
                "Headers": [{"Name": "Idempotency-Key", "Value": "r_1:3"}],
            }
        },
        "EmailTags": [
            {"Name": "switchboard_step", "Value": step_tag("r_1:3")},
            {"Name": "switchboard_template", "Value": "welcome"},
            {"Name": "team", "Value": "growth"},
        ],
    }
    assert result["message_id"] == "m-1"


def _error(status: int, code: str, message: str) -> Reply:
    body = json.dumps({"message": message}).encode()
    return Reply(status, body, {"content-type": "application/json", "x-amzn-ErrorType": code})


@pytest.mark.parametrize(
    ("reply", "kind", "retry_after_s"),
    [
        pytest.param(
            _error(429, "TooManyRequestsException", "Too many requests"),
            RetryableConnectorError,
            None,
            id="429-too-many-requests",
        ),
        pytest.param(
            _error(400, "Throttling", "Maximum sending rate exceeded."),
            RetryableConnectorError,
            None,
            id="throttling-rate",
        ),
        pytest.param(
            _error(400, "Throttling", "Daily message quota exceeded."),
            RetryableConnectorError,
            600.0,
            id="throttling-daily-quota",
        ),
        pytest.param(
            _error(400, "SendingPausedException", "Sending is paused for this account"),
            RetryableConnectorError,
            300.0,
            id="sending-paused",
        ),
        pytest.param(
            _error(500, "InternalFailure", "Internal error"),
            RetryableConnectorError,
            None,
            id="500",
        ),
        pytest.param(
            Reply(503, b"Service Unavailable", {}), RetryableConnectorError, None, id="503-bare"
        ),
        pytest.param(
            _error(400, "MessageRejected", "Email address is not verified."),
            PermanentConnectorError,
            None,
            id="message-rejected",
        ),
        pytest.param(
            _error(400, "BadRequestException", "Invalid email address"),
            PermanentConnectorError,
            None,
            id="bad-request",
        ),
        pytest.param(
            _error(404, "NotFoundException", "Configuration set <marketing> does not exist."),
            PermanentConnectorError,
            None,
            id="no-configuration-set",
        ),
        pytest.param(
            _error(400, "MailFromDomainNotVerifiedException", "MAIL FROM domain not verified"),
            PermanentConnectorError,
            None,
            id="mail-from-not-verified",
        ),
        pytest.param(
            _error(403, "UnrecognizedClientException", "The security token is invalid"),
            PermanentConnectorError,
            None,
            id="bad-credentials",
        ),
    ],
)
async def test_ses_errors_are_classified(
    peer: HttpPeer,
    monkeypatch: pytest.MonkeyPatch,
    reply: Reply,
    kind: type[Exception],
    retry_after_s: float | None,
) -> None:
    monkeypatch.setenv("SB_TEST_AWS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("SB_TEST_AWS_SECRET", "secret-example")
    peer.script.append(reply)
    connector = SesConnector("mail", options(f"http://127.0.0.1:{peer.port}"), InMemoryState())
    try:
        with pytest.raises(kind) as caught:
            await connector.invoke("email.send", payload(), CTX)
    finally:
        await connector.aclose()

    assert len(peer.received) == 1  # botocore's own retries are off: the dispatcher retries
    if isinstance(caught.value, RetryableConnectorError):
        assert caught.value.retry_after_s == retry_after_s


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        pytest.param({"region": ""}, "'region' is required", id="no-region"),
        pytest.param({"access_key_id": "AKIDPLAIN"}, "references", id="literal-key"),
        pytest.param({"secret_access_key": None}, "go together", id="half-credentials"),
        pytest.param({"access_key_id": "env:SB_TEST_UNSET"}, "SB_TEST_UNSET", id="unset-env"),
        pytest.param({"tags": {"team": "a b"}}, "ASCII letters", id="bad-tag"),
        pytest.param({"purposes": ["spam"]}, "unknown purpose", id="bad-purpose"),
        pytest.param({"smtp": {}}, "unknown", id="unknown-option"),
    ],
)
def test_bad_options(monkeypatch: pytest.MonkeyPatch, extra: JsonDict, message: str) -> None:
    monkeypatch.setenv("SB_TEST_AWS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("SB_TEST_AWS_SECRET", "secret-example")
    monkeypatch.delenv("SB_TEST_UNSET", raising=False)
    settings = {k: v for k, v in {**options("http://x"), **extra}.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        SesConnector("mail", settings, InMemoryState())


def test_purposes_default_to_email_marketing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SB_TEST_AWS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("SB_TEST_AWS_SECRET", "secret-example")
    assert SesConnector("m", options("http://x"), InMemoryState()).purposes == {"email_marketing"}
    receipts = SesConnector("m", options("http://x", purposes=[]), InMemoryState())
    assert receipts.purposes == frozenset()


async def test_newsletter_flow_sends_through_ses(
    aws: str, start_app: Callable[..., Awaitable[App]]
) -> None:
    verify_sender(aws)
    connectors = dict(defaults()["connectors"])
    connectors["mail"] = {"kind": "ses", "options": options(aws)}
    signup = defaults()["triggers"]["newsletter.signup"]
    welcome = {"connector": "mail", "action": "email.send", "params": {"template": "welcome"}}
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
    [message] = sent_messages()
    assert (message.subject, message.destinations) == (
        "Welcome, Ada",
        {"ToAddresses": ["ada@example.com"]},
    )
