"""The segment connector against a contract server that checks the documented requests."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from switchboard.server.connectors.base import BatchConnector, BatchItem, InvokeContext
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.connectors.segment import SegmentConnector
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError
from tests.connectors.vendors.contract import ContractServer, Reply

CONTACT = {
    "id": "c_1",
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "company": "Engines Ltd",
    "country": "GB",
    "phone": "",
}


def _payload(**extra: Any) -> dict[str, Any]:
    return {"event": "signup", "contact": CONTACT, "attributes": {"plan": "pro"}, **extra}


def _ctx(key: str = "r_1:0") -> InvokeContext:
    return InvokeContext(idempotency_key=key, deadline_s=5.0)


@pytest.fixture
async def segment(segment_server: ContractServer) -> AsyncIterator[SegmentConnector]:
    options = {"write_key": "env:SEGMENT_WRITE_KEY", "base_url": f"{segment_server.url}/v1"}
    connector = SegmentConnector("seg", options, InMemoryState())
    yield connector
    await connector.aclose()


async def test_identify_sends_the_documented_call(
    segment: SegmentConnector, segment_server: ContractServer
) -> None:
    result = await segment.invoke("identify", _payload(params={"traits": {"vip": True}}), _ctx())

    [seen] = segment_server.received
    assert (seen.method, seen.path) == ("POST", "/v1/identify")
    assert seen.headers["authorization"] == "Basic " + base64.b64encode(b"wk_test_123:").decode()
    assert seen.json() == {
        "userId": "c_1",
        "messageId": "r_1:0",
        "traits": {
            "email": "ada@example.com",
            "firstName": "Ada",
            "lastName": "Lovelace",
            "company": {"name": "Engines Ltd"},
            "address": {"country": "GB"},
            "vip": True,
        },
    }
    assert result == {"message_id": "r_1:0"}
    assert segment_server.violations == []


async def test_track_sends_event_and_properties(
    segment: SegmentConnector, segment_server: ContractServer
) -> None:
    payload = _payload(params={"event": "Signed Up", "properties": {"source": "web"}})
    await segment.invoke("track", payload, _ctx())

    [seen] = segment_server.received
    assert seen.path == "/v1/track"
    assert seen.json() == {
        "userId": "c_1",
        "messageId": "r_1:0",
        "event": "Signed Up",
        "properties": {"plan": "pro", "source": "web"},
    }
    assert segment_server.violations == []


async def test_batch_is_one_call_with_per_item_outcomes(
    segment: SegmentConnector, segment_server: ContractServer
) -> None:
    assert isinstance(segment, BatchConnector)
    items = [BatchItem(_payload(), _ctx(f"r_{i}:0")) for i in range(3)]
    items.insert(1, BatchItem({"event": "x", "contact": {"email": "no-id@example.com"}}, _ctx()))

    outcomes = await segment.invoke_batch("track", items)

    [seen] = segment_server.received
    assert seen.path == "/v1/batch"
    batch = seen.json()["batch"]
    assert [m["messageId"] for m in batch] == ["r_0:0", "r_1:0", "r_2:0"]
    assert all(m["type"] == "track" and m["event"] == "signup" for m in batch)
    assert isinstance(outcomes[1], PermanentConnectorError)
    assert "userId" in str(outcomes[1])
    assert [o for i, o in enumerate(outcomes) if i != 1] == [
        {"message_id": f"r_{i}:0"} for i in range(3)
    ]
    assert segment_server.violations == []


async def test_batch_is_split_at_500_kb_and_an_oversized_event_fails_alone(
    segment: SegmentConnector, segment_server: ContractServer
) -> None:
    blob = "x" * 30_000  # each event just under the 32 KB limit
    items = [
        BatchItem(_payload(params={"event": "big", "properties": {"blob": blob}}), _ctx(f"k{i}"))
        for i in range(20)
    ]
    items.append(
        BatchItem(_payload(params={"event": "huge", "properties": {"b": "y" * 40_000}}), _ctx())
    )

    outcomes = await segment.invoke_batch("track", items)

    calls = segment_server.calls("/v1/batch")
    assert len(calls) == 2  # 20 × ~30 KB does not fit in one 500 KB request
    assert all(len(c.body) <= 500 * 1024 for c in calls)
    assert sum(len(c.json()["batch"]) for c in calls) == 20
    assert isinstance(outcomes[-1], PermanentConnectorError)
    assert "32 KB" in str(outcomes[-1])
    assert segment_server.violations == []


@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        pytest.param(
            Reply(429, {"error": "rate limited"}, {"Retry-After": "5", "X-RateLimit-Reset": "5"}),
            RetryableConnectorError,
            5.0,
            id="429-retry-after",
        ),
        pytest.param(
            Reply(400, {"error": "invalid JSON"}), PermanentConnectorError, None, id="400"
        ),
        pytest.param(Reply(502, "bad gateway"), RetryableConnectorError, None, id="502"),
    ],
)
async def test_documented_errors_are_classified(
    segment: SegmentConnector,
    segment_server: ContractServer,
    reply: Reply,
    error: type[Exception],
    retry_after: float | None,
) -> None:
    segment_server.script["/v1/track"].append(reply)
    with pytest.raises(error) as info:
        await segment.invoke("track", _payload(), _ctx())
    assert getattr(info.value, "retry_after_s", None) == retry_after
    if reply.status == 400:
        assert "invalid JSON" in str(info.value)  # the vendor's message reaches the operator


async def test_throttled_batch_raises_for_the_whole_call(
    segment: SegmentConnector, segment_server: ContractServer
) -> None:
    segment_server.script["/v1/batch"].append(Reply(429, {}, {"Retry-After": "2"}))
    with pytest.raises(RetryableConnectorError) as info:
        await segment.invoke_batch("track", [BatchItem(_payload(), _ctx())])
    assert info.value.retry_after_s == 2.0


def test_write_key_must_be_a_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="secret reference") as literal:
        SegmentConnector("seg", {"write_key": "wk_live_secret"}, InMemoryState())
    assert "wk_live_secret" not in str(literal.value)
    monkeypatch.delenv("NO_SUCH_SEGMENT_KEY", raising=False)
    with pytest.raises(ValueError, match="NO_SUCH_SEGMENT_KEY"):
        SegmentConnector("seg", {"write_key": "env:NO_SUCH_SEGMENT_KEY"}, InMemoryState())


def test_declares_analytics_and_the_documented_batch_size(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("K", "k")
    connector = SegmentConnector("seg", {"write_key": "env:K"}, InMemoryState())
    assert connector.purposes == {"analytics"}
    assert connector.max_batch("track") == 2500
    with pytest.raises(ValueError, match="max_batch"):
        SegmentConnector("seg", {"write_key": "env:K", "max_batch": 5000}, InMemoryState())
