"""The webhook connector against a real HTTP(S) peer on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from switchboard.server.connectors.base import InvokeContext
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.connectors.webhook import WebhookConnector
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError
from tests.connectors.http_peer import HttpPeer, Reply

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
CTX = InvokeContext(idempotency_key="r_1:0", run_id="r_1", step_index=0, deadline_s=2.0)
PAYLOAD = {"contact": {"id": "c_1", "email": "a@example.com"}, "params": {"list": "news"}}


@pytest.fixture
def peer() -> Iterator[HttpPeer]:
    with HttpPeer() as running:
        yield running


def _webhook(url: str, **options: Any) -> WebhookConnector:
    return WebhookConnector("hook", {"url": url, "secret": SECRET, **options}, InMemoryState())


@pytest.fixture
async def hook(peer: HttpPeer) -> AsyncIterator[WebhookConnector]:
    connector = _webhook(peer.url)
    yield connector
    await connector.aclose()


async def test_posts_signed_json_per_standard_webhooks(
    peer: HttpPeer, hook: WebhookConnector
) -> None:
    result = await hook.invoke("webhook.post", PAYLOAD, CTX)
    assert result == {"status": 200, "body": {"ok": True}}
    [seen] = peer.received
    h = seen.headers
    assert h["webhook-id"] == h["idempotency-key"] == "r_1:0"
    assert h["content-type"] == "application/json"
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + seen.body
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    assert h["webhook-signature"] == f"v1,{expected}"
    body = seen.json()
    assert body["type"] == "webhook.post"
    assert body["timestamp"] == int(h["webhook-timestamp"])
    assert body["data"] == PAYLOAD


async def test_retries_carry_the_same_webhook_id(peer: HttpPeer, hook: WebhookConnector) -> None:
    peer.script.append(Reply(503))
    with pytest.raises(RetryableConnectorError):
        await hook.invoke("webhook.post", PAYLOAD, CTX)
    await hook.invoke("webhook.post", PAYLOAD, CTX)
    assert [r.headers["webhook-id"] for r in peer.received] == ["r_1:0", "r_1:0"]


@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        pytest.param(
            Reply(429, headers={"retry-after": "9"}), RetryableConnectorError, 9.0, id="429"
        ),
        pytest.param(Reply(503), RetryableConnectorError, None, id="503"),
        pytest.param(Reply(501), PermanentConnectorError, None, id="501"),
        pytest.param(Reply(422, b'{"error":"bad"}'), PermanentConnectorError, None, id="422"),
        pytest.param(
            Reply(302, headers={"location": "http://127.0.0.1:9/elsewhere"}),
            PermanentConnectorError,
            None,
            id="redirect",
        ),
    ],
)
async def test_statuses_are_classified(
    peer: HttpPeer,
    hook: WebhookConnector,
    reply: Reply,
    error: type[Exception],
    retry_after: float | None,
) -> None:
    peer.script.append(reply)
    with pytest.raises(error) as info:
        await hook.invoke("webhook.post", PAYLOAD, CTX)
    assert str(reply.status) in str(info.value)
    assert getattr(info.value, "retry_after_s", None) == retry_after
    assert len(peer.received) == 1  # a redirect is not followed


async def test_response_is_capped(peer: HttpPeer) -> None:
    peer.script.append(Reply(200, b"x" * 200_000))
    hook = _webhook(peer.url, max_response_bytes=1024)
    try:
        result = await hook.invoke("webhook.post", PAYLOAD, CTX)
    finally:
        await hook.aclose()
    assert result == {"status": 200, "body_truncated": True}


async def test_timeout_is_retryable(peer: HttpPeer, hook: WebhookConnector) -> None:
    peer.script.append(Reply(200, delay_s=1.0))
    ctx = InvokeContext(idempotency_key="r_1:0", deadline_s=0.1)
    with pytest.raises(RetryableConnectorError, match="timed out"):
        await hook.invoke("webhook.post", PAYLOAD, ctx)


async def test_refused_connection_is_retryable() -> None:
    with HttpPeer() as gone:
        url = gone.url
    hook = _webhook(url)
    try:
        with pytest.raises(RetryableConnectorError, match="unreachable"):
            await hook.invoke("webhook.post", PAYLOAD, CTX)
    finally:
        await hook.aclose()


async def test_tls_is_verified(tmp_path: Path) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with HttpPeer(tls=server_ctx) as peer:
        trusted = _webhook(peer.url, ca_file=str(ca_file))
        untrusted = _webhook(peer.url)
        try:
            assert (await trusted.invoke("webhook.post", PAYLOAD, CTX))["status"] == 200
            with pytest.raises(PermanentConnectorError, match="TLS verification failed"):
                await untrusted.invoke("webhook.post", PAYLOAD, CTX)
        finally:
            await trusted.aclose()
            await untrusted.aclose()
    assert len(peer.received) == 1  # nothing was sent over the unverified connection


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"url": "ftp://x"}, "option 'url'", id="bad-url"),
        pytest.param({"secret": "plain"}, "whsec_", id="no-prefix"),
        pytest.param({"secret": "whsec_!!!"}, "base64", id="not-base64"),
        pytest.param({"secret": "whsec_" + base64.b64encode(b"short").decode()}, "16", id="short"),
        pytest.param({"retries": 3}, "unknown", id="unknown-option"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    full = {"url": "https://example.invalid/hook", "secret": SECRET, **options}
    with pytest.raises(ValueError, match=message):
        WebhookConnector("hook", full, InMemoryState())


async def test_unknown_action_is_permanent(hook: WebhookConnector) -> None:
    with pytest.raises(PermanentConnectorError, match="no action"):
        await hook.invoke("contacts.upsert", PAYLOAD, CTX)


async def test_health_url_answering_2xx_is_healthy(peer: HttpPeer) -> None:
    hook = _webhook(peer.url, health_url=peer.url)
    try:
        await hook.health()
    finally:
        await hook.aclose()
    assert len(peer.received) == 0  # a GET, not a delivery


async def test_health_url_answering_503_is_unhealthy(peer: HttpPeer) -> None:
    peer.script.append(Reply(503))
    hook = _webhook(peer.url, health_url=peer.url)
    try:
        with pytest.raises(RetryableConnectorError, match="503"):
            await hook.health()
    finally:
        await hook.aclose()
