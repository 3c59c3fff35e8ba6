"""The ga4 connector against a Measurement Protocol contract server and its validation server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from switchboard.server.connectors.base import BatchItem, InvokeContext
from switchboard.server.connectors.ga4 import Ga4Connector
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError
from tests.connectors.vendors.contract import ContractServer, Reply
from tests.connectors.vendors.ga4_api import API_SECRET, MEASUREMENT_ID


def _payload(contact_id: str = "c_1", **attributes: Any) -> dict[str, Any]:
    return {
        "event": "order.paid",
        "contact": {"id": contact_id, "external_ids": {"ga_client_id": f"GA1.{contact_id}"}},
        "attributes": {"amount": 42.5, "currency": "EUR", "order_id": "o-9", **attributes},
    }


def _ctx(key: str = "r_1:0") -> InvokeContext:
    return InvokeContext(idempotency_key=key, deadline_s=5.0)


def _ga4(server: ContractServer, **options: Any) -> Ga4Connector:
    settings = {
        "measurement_id": MEASUREMENT_ID,
        "api_secret": "env:GA4_API_SECRET",
        "base_url": server.url,
        **options,
    }
    return Ga4Connector("ga", settings, InMemoryState())


@pytest.fixture
async def ga4(ga4_server: ContractServer) -> AsyncIterator[Ga4Connector]:
    connector = _ga4(ga4_server)
    yield connector
    await connector.aclose()


async def test_purchase_is_the_documented_request(
    ga4: Ga4Connector, ga4_server: ContractServer
) -> None:
    items = [{"item_id": "sku-1", "price": 42.5, "quantity": 1}]
    result = await ga4.invoke("purchase", _payload(items=items), _ctx())

    [seen] = ga4_server.received
    assert (seen.method, seen.path) == ("POST", "/mp/collect")
    assert seen.query == {"measurement_id": MEASUREMENT_ID, "api_secret": API_SECRET}
    assert seen.json() == {
        "client_id": "GA1.c_1",
        "user_id": "c_1",
        "consent": {"ad_user_data": "GRANTED", "ad_personalization": "GRANTED"},
        "events": [
            {
                "name": "purchase",
                "params": {
                    "value": 42.5,
                    "currency": "EUR",
                    "transaction_id": "o-9",
                    "items": items,
                },
            }
        ],
    }
    assert result == {"event": "purchase", "client_id": "GA1.c_1"}
    assert ga4_server.violations == []


async def test_event_names_are_made_valid_and_client_id_falls_back_to_a_pseudonym(
    ga4: Ga4Connector, ga4_server: ContractServer
) -> None:
    payload = {"event": "newsletter.signup", "contact": {"id": "c_2"}, "attributes": {}}
    result = await ga4.invoke("events.track", payload, _ctx())

    body = ga4_server.received[0].json()
    assert body["events"] == [{"name": "newsletter_signup", "params": {}}]
    assert body["client_id"].startswith("sb.")
    assert "c_2" not in body["client_id"]
    assert result["client_id"] == body["client_id"]
    assert ga4_server.violations == []


async def test_batch_groups_by_identity_and_sends_25_events_at_most(
    ga4: Ga4Connector, ga4_server: ContractServer
) -> None:
    items = [BatchItem(_payload("c_1", order_id=f"o-{i}"), _ctx(f"k{i}")) for i in range(30)]
    items += [BatchItem(_payload("c_2"), _ctx("other"))]

    outcomes = await ga4.invoke_batch("purchase", items)

    calls = [c.json() for c in ga4_server.calls("/mp/collect")]
    assert [(c["client_id"], len(c["events"])) for c in calls] == [
        ("GA1.c_1", 25),
        ("GA1.c_1", 5),
        ("GA1.c_2", 1),
    ]
    assert [e["params"]["transaction_id"] for c in calls[:2] for e in c["events"]] == [
        f"o-{i}" for i in range(30)
    ]
    assert all(isinstance(o, dict) for o in outcomes)
    assert ga4.max_batch("purchase") == 25
    assert ga4_server.violations == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param(
            {"event": "x", "contact": {"id": "c"}, "params": {"name": "ga_reserved"}},
            "reserved prefix",
            id="reserved-name",
        ),
        pytest.param(
            {"contact": {"id": "c"}, "params": {"name": "e", "params": {"note": "n" * 101}}},
            "at most 100",
            id="long-value",
        ),
        pytest.param(
            {"contact": {"id": "c"}, "params": {"name": "e", "value": 3}},
            "currency is required",
            id="value-without-currency",
        ),
    ],
)
async def test_what_ga4_would_drop_silently_fails_before_sending(
    ga4: Ga4Connector, ga4_server: ContractServer, payload: dict[str, Any], message: str
) -> None:
    with pytest.raises(PermanentConnectorError, match=message):
        await ga4.invoke("events.track", payload, _ctx())
    assert ga4_server.received == []


async def test_debug_mode_turns_validation_messages_into_permanent_errors(
    ga4_server: ContractServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WRONG_SECRET", "not-the-secret")
    valid = _ga4(ga4_server, debug=True)
    wrong = _ga4(ga4_server, debug=True, api_secret="env:WRONG_SECRET")
    try:
        await valid.invoke("purchase", _payload(), _ctx())
        with pytest.raises(PermanentConnectorError, match=r"api_secret: wrong api_secret"):
            await wrong.invoke("purchase", _payload(), _ctx())
    finally:
        await valid.aclose()
        await wrong.aclose()
    assert [s.path for s in ga4_server.received] == ["/debug/mp/collect"] * 2


async def test_production_endpoint_accepts_a_wrong_secret_silently(
    ga4_server: ContractServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Why debug mode exists: /mp/collect answers 2xx for what it will drop.
    monkeypatch.setenv("WRONG_SECRET", "not-the-secret")
    wrong = _ga4(ga4_server, api_secret="env:WRONG_SECRET")
    try:
        await wrong.invoke("purchase", _payload(), _ctx())
    finally:
        await wrong.aclose()
    assert ga4_server.violations == ["POST /mp/collect: wrong api_secret"]


@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        pytest.param(Reply(429, {}, {"Retry-After": "3"}), RetryableConnectorError, 3.0, id="429"),
        pytest.param(Reply(503, "unavailable"), RetryableConnectorError, None, id="503"),
        pytest.param(Reply(400, "bad request"), PermanentConnectorError, None, id="400"),
    ],
)
async def test_http_errors_are_classified(
    ga4: Ga4Connector,
    ga4_server: ContractServer,
    reply: Reply,
    error: type[Exception],
    retry_after: float | None,
) -> None:
    ga4_server.script["/mp/collect"].append(reply)
    with pytest.raises(error) as info:
        await ga4.invoke("purchase", _payload(), _ctx())
    assert getattr(info.value, "retry_after_s", None) == retry_after


async def test_without_advertising_it_serves_analytics_only_and_says_so(
    ga4_server: ContractServer,
) -> None:
    ga4 = _ga4(ga4_server, advertising=False)
    assert _ga4(ga4_server).purposes == {"analytics", "advertising"}
    assert ga4.purposes == {"analytics"}
    try:
        await ga4.invoke("conversions.track", {**_payload(), "params": {"name": "sign_up"}}, _ctx())
    finally:
        await ga4.aclose()
    body = ga4_server.received[0].json()
    assert body["consent"] == {"ad_user_data": "DENIED", "ad_personalization": "DENIED"}
    assert body["events"] == [{"name": "sign_up", "params": {"value": 42.5, "currency": "EUR"}}]
    assert ga4_server.violations == []
