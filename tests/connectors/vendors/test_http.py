"""The declarative http connector against a REST tool behind OAuth 2 (a contract server)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from switchboard.server.connectors.base import BatchItem, InvokeContext
from switchboard.server.connectors.http import HttpConnector
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError
from tests.connectors.vendors.contract import Reply
from tests.connectors.vendors.rest_api import CLIENT_ID, RestTool

PAYLOAD = {
    "event": "signup",
    "contact": {"id": "c_1", "email": "ada@example.com", "first_name": "Ada"},
    "params": {"list": "news"},
    "attributes": {"source": "web"},
}
CTX = InvokeContext(idempotency_key="r_1:0", deadline_s=5.0)


def _options(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": f"{url}/v1",
        "purposes": ["email_marketing"],
        "secrets": {"api_key": "env:CRM_API_KEY"},
        "headers": {"X-Api-Key": "{{ secrets.api_key }}"},
        "auth": {
            "type": "oauth2_client_credentials",
            "token_url": f"{url}/oauth/token",
            "client_id": CLIENT_ID,
            "client_secret": "env:CRM_CLIENT_SECRET",
        },
        "actions": {
            "contacts.upsert": {
                "method": "PUT",
                "url": "/people/{{ contact.id | urlencode }}",
                "query": {"source": "{{ attributes.source }}"},
                "headers": {"Idempotency-Key": "{{ idempotency_key }}"},
                "body": {
                    "id": "{{ contact.id }}",
                    "email": "{{ contact.email }}",
                    "name": "{{ contact.first_name }} {{ contact.last_name | default('') }}",
                    "lists": ["{{ params.list }}"],
                },
                "outcomes": [
                    {"status": 409, "when": "body.error == 'duplicate'", "outcome": "success"},
                    {"status": "4xx", "when": "body.error == 'locked'", "outcome": "retryable"},
                ],
                "result": {"crm_id": "{{ body.id }}"},
                "batch": {
                    "max_items": 100,
                    "url": "/people/batch",
                    "body": {"inputs": "{{ items }}"},
                    "results": "results",
                    "item_outcome": "'permanent' if result.error else 'success'",
                    "item_result": {"crm_id": "{{ result.id }}"},
                },
            }
        },
        **extra,
    }


@pytest.fixture
async def crm(rest_tool: RestTool) -> AsyncIterator[HttpConnector]:
    connector = HttpConnector("crm", _options(rest_tool.server.url), InMemoryState())
    yield connector
    await connector.aclose()


async def test_request_is_rendered_from_the_templates(
    crm: HttpConnector, rest_tool: RestTool
) -> None:
    result = await crm.invoke("contacts.upsert", PAYLOAD, CTX)

    token_call, call = rest_tool.server.received
    assert token_call.path == "/oauth/token"
    assert (call.method, call.path, call.query) == ("PUT", "/v1/people/c_1", {"source": "web"})
    assert call.headers["x-api-key"] == "key-123"
    assert call.headers["idempotency-key"] == "r_1:0"
    assert call.headers["authorization"] == "Bearer at-1"
    assert call.json() == {
        "id": "c_1",
        "email": "ada@example.com",
        "name": "Ada ",
        "lists": ["news"],
    }
    assert result == {"crm_id": "crm-c_1"}
    assert rest_tool.server.violations == []


async def test_token_is_cached_and_a_refused_token_is_renewed_once(
    crm: HttpConnector, rest_tool: RestTool
) -> None:
    await crm.invoke("contacts.upsert", PAYLOAD, CTX)
    await crm.invoke("contacts.upsert", PAYLOAD, CTX)
    assert crm.token_fetches == 1

    rest_tool.revoke_all()  # the token dies before its expires_in
    assert await crm.invoke("contacts.upsert", PAYLOAD, CTX) == {"crm_id": "crm-c_1"}
    assert crm.token_fetches == 2
    paths = [s.path for s in rest_tool.server.received]
    assert paths[-3:] == ["/v1/people/c_1", "/oauth/token", "/v1/people/c_1"]


async def test_a_token_refused_twice_is_permanent_after_one_refresh(
    crm: HttpConnector, rest_tool: RestTool
) -> None:
    await crm.invoke("contacts.upsert", PAYLOAD, CTX)
    rest_tool.server.script["/v1/people/"].extend([Reply(401, {"error": "invalid_token"})] * 2)
    with pytest.raises(PermanentConnectorError, match="HTTP 401"):
        await crm.invoke("contacts.upsert", PAYLOAD, CTX)
    assert crm.token_fetches == 2
    assert len(rest_tool.server.calls("/v1/people/")) == 3


async def test_refresh_token_rotation_is_kept_across_restarts(rest_tool: RestTool) -> None:
    url = rest_tool.server.url
    auth = {
        "type": "oauth2_refresh_token",
        "token_url": f"{url}/oauth/token",
        "client_id": CLIENT_ID,
        "client_secret": "env:CRM_CLIENT_SECRET",
        "refresh_token": "env:CRM_REFRESH_TOKEN",
    }
    state = InMemoryState()
    first = HttpConnector("crm", _options(url, auth=auth), state)
    await first.invoke("contacts.upsert", PAYLOAD, CTX)
    await first.aclose()
    assert rest_tool.refresh_token == "rt-1"  # the configured rt-0 is now dead

    restarted = HttpConnector("crm", _options(url, auth=auth), state)
    try:
        assert await restarted.invoke("contacts.upsert", PAYLOAD, CTX) == {"crm_id": "crm-c_1"}
    finally:
        await restarted.aclose()
    forgetful = HttpConnector("crm", _options(url, auth=auth), InMemoryState())
    try:
        with pytest.raises(PermanentConnectorError, match="invalid_grant"):
            await forgetful.invoke("contacts.upsert", PAYLOAD, CTX)
    finally:
        await forgetful.aclose()


@pytest.mark.parametrize(
    ("reply", "outcome", "retry_after"),
    [
        pytest.param(Reply(409, {"error": "duplicate"}), "success", None, id="409-rule-success"),
        pytest.param(
            Reply(423, {"error": "locked"}), RetryableConnectorError, None, id="rule-retry"
        ),
        pytest.param(
            Reply(429, {}, {"Retry-After": "7"}), RetryableConnectorError, 7.0, id="429-default"
        ),
        pytest.param(Reply(500, "oops"), RetryableConnectorError, None, id="500-default"),
        pytest.param(
            Reply(400, {"message": "email is invalid"}), PermanentConnectorError, None, id="400"
        ),
    ],
)
async def test_outcomes_follow_rules_then_the_defaults(
    crm: HttpConnector,
    rest_tool: RestTool,
    reply: Reply,
    outcome: Any,
    retry_after: float | None,
) -> None:
    rest_tool.server.script["/v1/people/"].append(reply)
    if outcome == "success":
        result = await crm.invoke("contacts.upsert", PAYLOAD, CTX)
        assert result == {"crm_id": None}  # a duplicate has no new record
        return
    with pytest.raises(outcome) as info:
        await crm.invoke("contacts.upsert", PAYLOAD, CTX)
    assert getattr(info.value, "retry_after_s", None) == retry_after
    if reply.status == 400:
        assert "email is invalid" in str(info.value)


async def test_batch_maps_per_item_results_back(crm: HttpConnector, rest_tool: RestTool) -> None:
    contacts = [
        {"id": "a", "email": "a@example.com", "first_name": "A"},
        {"id": "b", "email": "not-an-email", "first_name": "B"},
        {"id": "c", "email": "c@example.com", "first_name": "C"},
    ]
    items = [BatchItem({**PAYLOAD, "contact": c}, CTX) for c in contacts]

    outcomes = await crm.invoke_batch("contacts.upsert", items)

    [call] = rest_tool.server.calls("/v1/people/batch")
    assert [p["id"] for p in call.json()["inputs"]] == ["a", "b", "c"]
    assert outcomes[0] == {"crm_id": "crm-a"}
    assert isinstance(outcomes[1], PermanentConnectorError)
    assert "invalid email" in str(outcomes[1])
    assert outcomes[2] == {"crm_id": "crm-c"}
    assert crm.max_batch("contacts.upsert") == 100
    assert sorted(rest_tool.people) == ["a", "c"]


async def test_a_missing_field_fails_the_step_not_the_server(crm: HttpConnector) -> None:
    payload = {**PAYLOAD, "contact": {"id": "c_9"}}  # no email
    with pytest.raises(PermanentConnectorError, match=r"body.email: .* no attribute 'email'"):
        await crm.invoke("contacts.upsert", payload, CTX)


async def test_the_sandbox_refuses_python_internals(rest_tool: RestTool) -> None:
    options = _options(rest_tool.server.url)
    options["actions"]["contacts.upsert"]["body"] = {"x": "{{ contact.__class__.__mro__ }}"}
    connector = HttpConnector("crm", options, InMemoryState())
    with pytest.raises(PermanentConnectorError, match="unsafe"):
        await connector.invoke("contacts.upsert", PAYLOAD, CTX)
    assert rest_tool.server.received == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            {"body": {"email": "{{ contact.email "}},
            r"actions.'contacts.upsert'.body.email: template error",
            id="syntax",
        ),
        pytest.param(
            {"body": {"email": "{{ contcat.email }}"}},
            r"unknown name\(s\) contcat",
            id="unknown-variable",
        ),
        pytest.param(
            {"outcomes": [{"status": "4yy", "outcome": "success"}]},
            r"outcomes\[0\].status",
            id="bad-status",
        ),
        pytest.param(
            {"outcomes": [{"status": 409, "outcome": "ignore"}]},
            r"outcome must be one of",
            id="bad-outcome",
        ),
        pytest.param({"verb": "PUT"}, r"unknown key\(s\) verb", id="unknown-key"),
    ],
)
def test_bad_settings_stop_start_up_with_the_place_named(
    rest_tool: RestTool, change: dict[str, Any], message: str
) -> None:
    options = _options(rest_tool.server.url)
    options["actions"]["contacts.upsert"].update(change)
    with pytest.raises(ValueError, match=message) as info:
        HttpConnector("crm", options, InMemoryState())
    assert "connector 'crm'" in str(info.value)


def test_secrets_are_references_and_purposes_are_declared(rest_tool: RestTool) -> None:
    url = rest_tool.server.url
    with pytest.raises(ValueError, match="secret reference"):
        HttpConnector("crm", _options(url, secrets={"api_key": "key-123"}), InMemoryState())
    without = _options(url)
    del without["purposes"]
    with pytest.raises(ValueError, match="'purposes' is required"):
        HttpConnector("crm", without, InMemoryState())
    assert HttpConnector("crm", _options(url), InMemoryState()).purposes == {"email_marketing"}
