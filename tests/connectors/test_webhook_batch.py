"""The webhook connector's batch form against a real HTTP peer on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from switchboard.server.connectors.base import BatchConnector, BatchItem, InvokeContext
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.connectors.webhook import WebhookConnector
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError
from tests.connectors.http_peer import HttpPeer, Reply

KEY = b"0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(KEY).decode()


def _items(*keys: str) -> list[BatchItem]:
    return [
        BatchItem({"contact": {"id": f"c_{k}"}}, InvokeContext(idempotency_key=k, deadline_s=2.0))
        for k in keys
    ]


@pytest.fixture
def peer() -> Iterator[HttpPeer]:
    with HttpPeer() as running:
        yield running


@pytest.fixture
async def hook(peer: HttpPeer) -> AsyncIterator[WebhookConnector]:
    options = {"url": peer.url, "secret": SECRET, "max_batch": 50}
    connector = WebhookConnector("hook", options, InMemoryState())
    yield connector
    await connector.aclose()


async def test_one_signed_post_carries_every_item_with_its_key(
    peer: HttpPeer, hook: WebhookConnector
) -> None:
    assert isinstance(hook, BatchConnector)
    assert hook.max_batch("webhook.post") == 50
    outcomes = await hook.invoke_batch("webhook.post", _items("r1:0", "r2:0"))
    assert outcomes == [{"status": 200}, {"status": 200}]
    [seen] = peer.received
    h = seen.headers
    expected_id = "batch_" + hashlib.sha256(b"r1:0\nr2:0").hexdigest()[:32]
    assert h["webhook-id"] == h["idempotency-key"] == expected_id
    signed = f"{h['webhook-id']}.{h['webhook-timestamp']}.".encode() + seen.body
    mac = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    assert h["webhook-signature"] == f"v1,{mac}"
    body = seen.json()
    assert body["type"] == "webhook.post"
    assert body["batch"] == [
        {"id": "r1:0", "data": {"contact": {"id": "c_r1:0"}}},
        {"id": "r2:0", "data": {"contact": {"id": "c_r2:0"}}},
    ]


async def test_a_retry_of_fewer_items_is_a_new_batch_id(
    peer: HttpPeer, hook: WebhookConnector
) -> None:
    await hook.invoke_batch("webhook.post", _items("a", "b"))
    await hook.invoke_batch("webhook.post", _items("a", "b"))
    await hook.invoke_batch("webhook.post", _items("b"))
    ids = [r.headers["webhook-id"] for r in peer.received]
    assert ids[0] == ids[1] != ids[2]


async def test_per_item_results_fail_only_the_items_they_name(
    peer: HttpPeer, hook: WebhookConnector
) -> None:
    results: list[dict[str, Any]] = [
        {"id": "crm-1"},
        {"error": "rate limited for this record", "retryable": True},
        {"error": "invalid email"},
    ]
    peer.script.append(Reply(body=json.dumps({"results": results}).encode()))
    ok, later, bad = await hook.invoke_batch("webhook.post", _items("a", "b", "c"))
    assert ok == {"status": 200, "body": {"id": "crm-1"}}
    assert isinstance(later, RetryableConnectorError)
    assert "rate limited" in str(later)
    assert isinstance(bad, PermanentConnectorError)
    assert "invalid email" in str(bad)


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        pytest.param(Reply(503, b"down"), RetryableConnectorError, id="503-whole-batch"),
        pytest.param(Reply(400, b"bad"), PermanentConnectorError, id="400-whole-batch"),
        pytest.param(
            Reply(body=b'{"results":[{}]}'), PermanentConnectorError, id="results-miscounted"
        ),
    ],
)
async def test_a_failed_request_fails_the_whole_batch(
    peer: HttpPeer, hook: WebhookConnector, reply: Reply, error: type[Exception]
) -> None:
    peer.script.append(reply)
    with pytest.raises(error):
        await hook.invoke_batch("webhook.post", _items("a", "b"))


@pytest.mark.parametrize("value", [0, -1, "10", True])
def test_max_batch_must_be_a_positive_integer(value: Any) -> None:
    with pytest.raises(ValueError, match="max_batch"):
        WebhookConnector(
            "hook", {"url": "http://x", "secret": SECRET, "max_batch": value}, InMemoryState()
        )
