"""The HubSpot adapter against its contract server: documented requests, replayed errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from switchboard.server.config.flow import ConnectorSettings
from switchboard.server.connectors.base import BatchConnector, BatchItem, InvokeContext, purposes_of
from switchboard.server.connectors.hubspot import HubSpotConnector
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.connectors.vendor_limits import with_connector_defaults
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError
from tests.connectors.vendors.hubspot_server import (
    CLIENT_ID,
    CLIENT_SECRET,
    REFRESH_TOKEN,
    FakeHubSpot,
)
from tests.connectors.vendors.recording_server import Canned

TOKEN = "pat-na1-test"


@pytest.fixture
async def hubspot() -> AsyncIterator[FakeHubSpot]:
    server = FakeHubSpot(TOKEN)
    await server.start()
    yield server
    await server.stop()


def contact(email: str, **fields: Any) -> dict[str, Any]:
    return {"id": f"c-{email}", "email": email, "external_ids": {}, "attributes": {}, **fields}


def item(email: str, key: str = "", **fields: Any) -> BatchItem:
    params = fields.pop("params", {})
    payload = {"contact": contact(email, **fields), "params": params}
    return BatchItem(payload, InvokeContext(idempotency_key=key or f"r1:{email}"))


@pytest.fixture
async def make(hubspot: FakeHubSpot, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Any]:
    monkeypatch.setenv("HS_TOKEN", TOKEN)
    monkeypatch.setenv("HS_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("HS_CLIENT_SECRET", CLIENT_SECRET)
    monkeypatch.setenv("HS_REFRESH", REFRESH_TOKEN)
    built: list[HubSpotConnector] = []

    def build(oauth: bool = False, **options: Any) -> HubSpotConnector:
        auth = (
            {
                "client_id": "env:HS_CLIENT_ID",
                "client_secret": "env:HS_CLIENT_SECRET",
                "refresh_token": "env:HS_REFRESH",
            }
            if oauth
            else {"access_token": "env:HS_TOKEN"}
        )
        connector = HubSpotConnector(
            "hubspot", {"base_url": hubspot.url, **auth, **options}, InMemoryState()
        )
        built.append(connector)
        return connector

    yield build
    for connector in built:
        await connector.aclose()


async def test_upsert_sends_the_documented_batch_request(hubspot: FakeHubSpot, make: Any) -> None:
    connector = make()
    outcomes = await connector.invoke_batch(
        "contacts.upsert",
        [
            item("ada@example.com", first_name="Ada", company="AE"),
            item("bo@example.com", last_name="B"),
        ],
    )
    [call] = hubspot.calls("POST", "/crm/v3/objects/contacts/batch/upsert")
    assert call.headers["authorization"] == f"Bearer {TOKEN}"
    assert call.headers["content-type"] == "application/json"
    assert call.json() == {
        "inputs": [
            {
                "idProperty": "email",
                "id": "ada@example.com",
                "properties": {"email": "ada@example.com", "firstname": "Ada", "company": "AE"},
                "objectWriteTraceId": "0",
            },
            {
                "idProperty": "email",
                "id": "bo@example.com",
                "properties": {"email": "bo@example.com", "lastname": "B"},
                "objectWriteTraceId": "1",
            },
        ]
    }
    ada, bo = hubspot.contacts["ada@example.com"], hubspot.contacts["bo@example.com"]
    assert outcomes == [
        {"external_id": ada["id"], "created": True},
        {"external_id": bo["id"], "created": True},
    ]
    again = await connector.invoke(
        "contacts.upsert", item("ada@example.com", first_name="Ada2").payload, InvokeContext("k")
    )
    assert again == {"external_id": ada["id"], "created": False}
    assert hubspot.contacts["ada@example.com"]["properties"]["firstname"] == "Ada2"
    await connector.aclose()


async def test_a_hundred_contacts_take_one_call(hubspot: FakeHubSpot, make: Any) -> None:
    connector = make()
    assert isinstance(connector, BatchConnector)
    assert connector.max_batch("contacts.upsert") == 100
    assert connector.max_batch("contacts.erase") == 1
    items = [item(f"p{i}@example.com") for i in range(100)]
    outcomes = await connector.invoke_batch("contacts.upsert", items)
    assert len(hubspot.calls("POST", "/crm/v3/objects/contacts/batch/upsert")) == 1
    assert all(isinstance(o, dict) and o["created"] for o in outcomes)
    assert len({o["external_id"] for o in outcomes if isinstance(o, dict)}) == 100
    await connector.aclose()


async def test_property_mapping_reaches_attributes_and_partial_failure_is_per_item(
    hubspot: FakeHubSpot, make: Any
) -> None:
    # `plan` is not a property of this account: HubSpot answers 207 with an error for the
    # inputs that carry it, and the others are written.
    connector = make(
        properties={"email": "email", "firstname": "first_name", "plan": "attributes.plan"}
    )
    items = [
        item("a@example.com", first_name="A"),
        item("b@example.com", attributes={"plan": "pro"}),
        item("c@example.com", first_name="C"),
    ]
    outcomes = await connector.invoke_batch("contacts.upsert", items)
    [call] = hubspot.calls("POST", "/crm/v3/objects/contacts/batch/upsert")
    assert call.json()["inputs"][1]["properties"] == {"email": "b@example.com", "plan": "pro"}
    assert isinstance(outcomes[0], dict)
    assert isinstance(outcomes[2], dict)
    assert isinstance(outcomes[1], PermanentConnectorError)
    assert 'Property "plan" does not exist' in str(outcomes[1])
    assert set(hubspot.contacts) == {"a@example.com", "c@example.com"}
    await connector.aclose()


async def test_a_batch_refused_as_invalid_is_split_to_isolate_the_bad_contact(
    hubspot: FakeHubSpot, make: Any
) -> None:
    connector = make()
    items = [item(f"ok{i}@example.com") for i in range(3)] + [item("broken")]
    outcomes = await connector.invoke_batch("contacts.upsert", items)
    assert [isinstance(o, dict) for o in outcomes] == [True, True, True, False]
    assert isinstance(outcomes[3], PermanentConnectorError)
    assert "Email address broken is invalid" in str(outcomes[3])
    # 4 inputs refused, then halves [2 ok] + [ok, broken], then [ok] + [broken].
    assert len(hubspot.calls("POST", "/crm/v3/objects/contacts/batch/upsert")) == 5
    await connector.aclose()


async def test_one_contact_twice_in_a_batch_is_one_input_and_the_later_change_wins(
    hubspot: FakeHubSpot, make: Any
) -> None:
    connector = make()
    outcomes = await connector.invoke_batch(
        "contacts.upsert",
        [item("Dup@example.com", first_name="Old"), item("dup@example.com", first_name="New")],
    )
    [call] = hubspot.calls("POST", "/crm/v3/objects/contacts/batch/upsert")
    assert len(call.json()["inputs"]) == 1
    assert outcomes[0] == outcomes[1]
    assert hubspot.contacts["dup@example.com"]["properties"]["firstname"] == "New"
    await connector.aclose()


@pytest.mark.parametrize(
    ("headers", "policy", "expected"),
    [
        pytest.param({"Retry-After": "3"}, "TEN_SECONDLY_ROLLING", 3.0, id="retry-after"),
        pytest.param({}, "TEN_SECONDLY_ROLLING", 10.0, id="ten-secondly-policy"),
        pytest.param({}, "SECONDLY", 1.0, id="secondly-policy"),
    ],
)
async def test_throttled_call_is_retryable_after_the_documented_wait(
    hubspot: FakeHubSpot, make: Any, headers: dict[str, str], policy: str, expected: float
) -> None:
    body = {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "x",
        "policyName": policy,
    }
    hubspot.fail_next.append(Canned(429, body, headers))
    connector = make()
    with pytest.raises(RetryableConnectorError, match="ten_secondly_rolling limit") as caught:
        await connector.invoke_batch("contacts.upsert", [item("t@example.com")])
    assert caught.value.retry_after_s == expected
    await connector.aclose()


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_server_errors_are_retryable(hubspot: FakeHubSpot, make: Any, status: int) -> None:
    hubspot.fail_next.append(Canned(status, {"status": "error", "message": "internal error"}))
    connector = make()
    with pytest.raises(RetryableConnectorError, match=f"HTTP {status}"):
        await connector.invoke_batch("contacts.upsert", [item("s@example.com")])
    await connector.aclose()


async def test_unreachable_host_is_retryable(make: Any) -> None:
    connector = make(base_url="http://127.0.0.1:9")
    with pytest.raises(RetryableConnectorError, match="unreachable"):
        await connector.invoke("contacts.upsert", item("u@example.com").payload, InvokeContext("k"))
    await connector.aclose()


async def test_private_app_token_refused_is_permanent_and_not_echoed(
    hubspot: FakeHubSpot, make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HS_TOKEN", "pat-na1-wrong")
    connector = make()
    with pytest.raises(PermanentConnectorError, match="refused the credentials") as caught:
        await connector.invoke("contacts.upsert", item("x@example.com").payload, InvokeContext("k"))
    assert "pat-na1-wrong" not in str(caught.value)
    assert hubspot.calls("POST", "/oauth/v1/token") == []
    await connector.aclose()


async def test_oauth_token_is_cached_and_refreshed_exactly_once_when_expired(
    hubspot: FakeHubSpot, make: Any
) -> None:
    connector = make(oauth=True)
    await connector.invoke("contacts.upsert", item("o1@example.com").payload, InvokeContext("k1"))
    await connector.invoke("contacts.upsert", item("o2@example.com").payload, InvokeContext("k2"))
    [first] = hubspot.calls("POST", "/oauth/v1/token")
    assert first.headers["content-type"] == "application/x-www-form-urlencoded"
    hubspot.expire_all_tokens()
    result = await connector.invoke(
        "contacts.upsert", item("o3@example.com").payload, InvokeContext("k3")
    )
    assert result["created"] is True
    assert len(hubspot.calls("POST", "/oauth/v1/token")) == 2
    upserts = hubspot.calls("POST", "/crm/v3/objects/contacts/batch/upsert")
    assert [u.headers["authorization"] for u in upserts] == [
        "Bearer oauth-access-1",
        "Bearer oauth-access-1",
        "Bearer oauth-access-1",
        "Bearer oauth-access-2",
    ]
    await connector.aclose()


async def test_oauth_refreshes_once_then_gives_up(hubspot: FakeHubSpot, make: Any) -> None:
    expired = {"status": "error", "message": "expired", "category": "EXPIRED_AUTHENTICATION"}
    hubspot.fail_next.extend([Canned(401, expired), Canned(401, expired)])
    connector = make(oauth=True)
    with pytest.raises(PermanentConnectorError, match="HTTP 401"):
        await connector.invoke("contacts.upsert", item("g@example.com").payload, InvokeContext("k"))
    assert len(hubspot.calls("POST", "/oauth/v1/token")) == 2  # the first token, one refresh
    assert len(hubspot.calls("POST", "/crm/v3/objects/contacts/batch/upsert")) == 2
    await connector.aclose()


async def test_lists_add_resolves_record_ids_and_adds_members(
    hubspot: FakeHubSpot, make: Any
) -> None:
    connector = make()
    await connector.invoke_batch(
        "contacts.upsert", [item("l1@example.com"), item("l2@example.com")]
    )
    l1 = hubspot.contacts["l1@example.com"]["id"]
    known = item("l2@example.com", params={"list_id": "7"})
    known.payload["contact"]["external_ids"] = {
        "hubspot": "999"
    }  # a stale id: HubSpot says missing
    outcomes = await connector.invoke_batch(
        "lists.add",
        [
            item("l1@example.com", params={"list_id": "7"}),
            known,
            item("nobody@example.com", params={"list_id": "7"}),
        ],
    )
    [read] = hubspot.calls("POST", "/crm/v3/objects/contacts/batch/read")
    assert read.json() == {
        "idProperty": "email",
        "properties": ["email"],
        "inputs": [{"id": "l1@example.com"}, {"id": "nobody@example.com"}],
    }
    [add] = hubspot.calls("PUT", "/crm/v3/lists/7/memberships/add")
    assert sorted(add.json()) == sorted([l1, "999"])
    assert outcomes[0] == {"list_id": "7", "external_id": l1, "added": True}
    assert isinstance(outcomes[1], PermanentConnectorError)
    assert "999 is missing" in str(outcomes[1])
    assert isinstance(outcomes[2], RetryableConnectorError)
    assert hubspot.lists["7"] == {l1}
    await connector.aclose()


async def test_lists_add_to_an_unknown_list_fails_permanently(
    hubspot: FakeHubSpot, make: Any
) -> None:
    connector = make(list_id="404")
    await connector.invoke_batch("contacts.upsert", [item("n@example.com")])
    [outcome] = await connector.invoke_batch("lists.add", [item("n@example.com")])
    assert isinstance(outcome, PermanentConnectorError)
    assert "List does not exist" in str(outcome)
    await connector.aclose()


async def test_erase_uses_gdpr_delete_by_email(hubspot: FakeHubSpot, make: Any) -> None:
    connector = make()
    await connector.invoke_batch("contacts.upsert", [item("gone@example.com")])
    result = await connector.invoke(
        "contacts.erase", item("Gone@example.com").payload, InvokeContext("k")
    )
    [call] = hubspot.calls("POST", "/crm/v3/objects/contacts/gdpr-delete")
    assert call.json() == {"objectId": "Gone@example.com", "idProperty": "email"}
    assert result == {"erased": True}
    assert "gone@example.com" not in hubspot.contacts
    await connector.aclose()


async def test_health_checks_credentials(
    hubspot: FakeHubSpot, make: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    connector = make()
    await connector.health()
    monkeypatch.setenv("HS_TOKEN", "nope")
    bad = make()
    with pytest.raises(PermanentConnectorError):
        await bad.health()
    await connector.aclose()
    await bad.aclose()


def test_secrets_by_reference_and_settings_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "token"
    secret.write_text("pat-from-file\n")
    HubSpotConnector("hs", {"access_token": f"file:{secret}"}, InMemoryState())
    monkeypatch.delenv("HS_MISSING", raising=False)
    with pytest.raises(
        ValueError,
        match=r"connector 'hs': option 'access_token': environment variable 'HS_MISSING' is not",
    ):
        HubSpotConnector("hs", {"access_token": "env:HS_MISSING"}, InMemoryState())
    with pytest.raises(ValueError, match="needs access_token"):
        HubSpotConnector("hs", {}, InMemoryState())
    with pytest.raises(ValueError, match=r"option\(s\) 'api_key' unknown"):
        HubSpotConnector("hs", {"access_token": "x", "api_key": "y"}, InMemoryState())


def test_default_limits_keep_within_the_ten_second_window_unless_configured() -> None:
    connector = HubSpotConnector("hs", {"access_token": "x"}, InMemoryState())
    assert purposes_of(connector) == frozenset()  # record keeping: no consent purpose
    configs = {
        "hs": ConnectorSettings(kind="hubspot"),
        "hs_pro": ConnectorSettings(kind="hubspot", rate_per_s=18.0),
    }
    effective = with_connector_defaults(configs, {"hs": connector, "hs_pro": connector})
    rate, burst = effective["hs"].rate_per_s, effective["hs"].rate_burst
    assert rate is not None
    assert rate * 10 + burst <= 100
    assert effective["hs_pro"].rate_per_s == 18.0


async def test_erase_without_email_uses_the_hubspot_id_or_fails_permanently(
    hubspot: FakeHubSpot, make: Any
) -> None:
    connector = make()
    await connector.invoke_batch("contacts.upsert", [item("idonly@example.com")])
    stub = {"contact": {"id": "c1", "external_ids": {"hubspot": "101"}}}
    assert await connector.invoke("contacts.erase", stub, InvokeContext("k")) == {"erased": True}
    [call] = hubspot.calls("POST", "/crm/v3/objects/contacts/gdpr-delete")
    assert call.json() == {"objectId": "101"}
    assert hubspot.erased == ["idonly@example.com"]
    with pytest.raises(
        PermanentConnectorError, match="needs the contact's email or its HubSpot id"
    ):
        await connector.invoke("contacts.erase", {"contact": {"id": "c2"}}, InvokeContext("k2"))
