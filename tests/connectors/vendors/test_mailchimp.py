"""The Mailchimp adapter against the Mailchimp contract server."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from switchboard.server.config.flow import ConnectorSettings
from switchboard.server.connectors.base import BatchConnector, BatchItem, InvokeContext, purposes_of
from switchboard.server.connectors.mailchimp import MailchimpConnector, subscriber_hash
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.connectors.vendor_limits import with_connector_defaults
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError
from tests.connectors.vendors.mailchimp_server import API_KEY, FakeMailchimp, md5
from tests.connectors.vendors.recording_server import Canned

Make = Callable[..., MailchimpConnector]


@pytest.fixture
async def mailchimp() -> AsyncIterator[FakeMailchimp]:
    server = FakeMailchimp()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def make(mailchimp: FakeMailchimp, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Make]:
    monkeypatch.setenv("MC_KEY", API_KEY)
    built: list[MailchimpConnector] = []

    def build(**options: Any) -> MailchimpConnector:
        merged = {"api_key": "env:MC_KEY", "base_url": mailchimp.url, "list_id": "list1", **options}
        connector = MailchimpConnector("mailchimp", merged, InMemoryState())
        built.append(connector)
        return connector

    yield build
    for connector in built:
        await connector.aclose()


def item(email: str, **params: Any) -> BatchItem:
    contact = {
        "id": f"c-{email}",
        "email": email,
        "first_name": "Ada",
        "last_name": "L",
        "phone": "",
    }
    return BatchItem({"contact": contact, "params": params}, InvokeContext(f"r:{email}"))


def test_subscriber_hash_is_md5_of_the_lower_cased_email() -> None:
    assert subscriber_hash("Urist.McVankab@Freddiesjokes.com") == "62eeb292278cc15f5817cb78f7790b08"


async def test_subscribe_puts_the_member_by_hash_with_merge_fields_and_tags(
    mailchimp: FakeMailchimp, make: Make
) -> None:
    connector = make(tags=["newsletter"])
    result = await connector.invoke(
        "lists.subscribe", item("Ada@Example.com", tags=["web"]).payload, InvokeContext("k")
    )
    digest = md5("ada@example.com")
    [put] = mailchimp.calls("PUT", f"/3.0/lists/list1/members/{digest}")
    user, key = (
        base64.b64decode(put.headers["authorization"].removeprefix("Basic ")).decode().split(":")
    )
    assert key == API_KEY
    assert user
    assert put.json() == {
        "email_address": "Ada@Example.com",
        "status": "subscribed",
        "status_if_new": "subscribed",
        "merge_fields": {"FNAME": "Ada", "LNAME": "L"},
    }
    [tags] = mailchimp.calls("POST", f"/3.0/lists/list1/members/{digest}/tags")
    assert tags.json() == {
        "tags": [{"name": "newsletter", "status": "active"}, {"name": "web", "status": "active"}]
    }
    assert result == {"list_id": "list1", "subscriber_hash": digest, "status": "subscribed"}
    assert mailchimp.members["list1"][digest]["tags"] == ["newsletter", "web"]


async def test_double_opt_in_subscribes_as_pending_and_unsubscribe_sets_unsubscribed(
    mailchimp: FakeMailchimp, make: Make
) -> None:
    connector = make(double_opt_in=True)
    await connector.invoke("lists.subscribe", item("p@example.com").payload, InvokeContext("k"))
    assert mailchimp.members["list1"][md5("p@example.com")]["status"] == "pending"
    result = await connector.invoke(
        "lists.unsubscribe", item("p@example.com").payload, InvokeContext("k2")
    )
    assert result["status"] == "unsubscribed"
    assert mailchimp.seen[-1].json() == {
        "email_address": "p@example.com",
        "status": "unsubscribed",
        "status_if_new": "unsubscribed",
    }


async def test_batch_subscribe_is_one_call_per_audience_with_per_member_outcomes(
    mailchimp: FakeMailchimp, make: Make
) -> None:
    connector = make()
    assert isinstance(connector, BatchConnector)
    assert connector.max_batch("lists.subscribe") == 500
    await connector.invoke("lists.subscribe", item("old@example.com").payload, InvokeContext("k"))
    items = [
        item("old@example.com"),
        item("new@example.com"),
        item("not-an-email"),
        item("x@example.com", list_id="nope"),
    ]
    outcomes = await connector.invoke_batch("lists.subscribe", items)
    [call] = mailchimp.calls("POST", "/3.0/lists/list1")
    assert call.json()["update_existing"] is True
    assert [m["email_address"] for m in call.json()["members"]] == [
        "old@example.com",
        "new@example.com",
        "not-an-email",
    ]
    assert outcomes[0] == {
        "list_id": "list1",
        "subscriber_hash": md5("old@example.com"),
        "status": "subscribed",
        "created": False,
    }
    assert outcomes[1] == {
        "list_id": "list1",
        "subscriber_hash": md5("new@example.com"),
        "status": "subscribed",
        "created": True,
    }
    assert isinstance(outcomes[2], PermanentConnectorError)
    assert "looks fake or invalid" in str(outcomes[2])
    assert isinstance(outcomes[3], PermanentConnectorError)
    assert "Resource Not Found" in str(outcomes[3])


async def test_validation_error_is_permanent_with_mailchimps_message(
    mailchimp: FakeMailchimp, make: Make
) -> None:
    connector = make(merge_fields={"fname": "first_name"})
    with pytest.raises(
        PermanentConnectorError, match="Invalid Resource: Your merge fields were invalid"
    ):
        await connector.invoke("lists.subscribe", item("v@example.com").payload, InvokeContext("k"))


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [
        pytest.param(429, {"Retry-After": "7"}, 7.0, id="429-retry-after"),
        pytest.param(429, {}, None, id="429"),
        pytest.param(500, {}, None, id="500"),
        pytest.param(503, {}, None, id="503"),
    ],
)
async def test_throttling_and_server_errors_are_retryable(
    mailchimp: FakeMailchimp,
    make: Make,
    status: int,
    headers: dict[str, str],
    retry_after: float | None,
) -> None:
    body = {
        "title": "Too Many Requests",
        "status": status,
        "detail": "You have exceeded the limit of 10 simultaneous connections.",
    }
    mailchimp.fail_next.append(Canned(status, body, headers))
    connector = make()
    with pytest.raises(RetryableConnectorError, match=f"HTTP {status}") as caught:
        await connector.invoke("lists.subscribe", item("t@example.com").payload, InvokeContext("k"))
    assert caught.value.retry_after_s == retry_after
    # A batch call that fails as a whole raises for every member together.
    mailchimp.fail_next.append(Canned(status, body, headers))
    with pytest.raises(RetryableConnectorError):
        await connector.invoke_batch(
            "lists.subscribe", [item("t@example.com"), item("u@example.com")]
        )


async def test_refused_api_key_is_permanent_and_never_echoed(
    mailchimp: FakeMailchimp, make: Make, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MC_KEY", "ffffffffffffffffffffffffffffffff-us21")
    connector = make()
    with pytest.raises(PermanentConnectorError, match="API Key Invalid") as caught:
        await connector.health()
    assert "ffffffff" not in str(caught.value)


async def test_erase_deletes_permanently_at_most_ten_at_once(make: Make) -> None:
    slow = FakeMailchimp(delay_s=0.05)
    await slow.start()
    try:
        connector = make(base_url=slow.url)
        emails = [f"e{i}@example.com" for i in range(25)]
        await connector.invoke_batch("lists.subscribe", [item(e) for e in emails])
        outcomes = await connector.invoke_batch(
            "contacts.erase", [item(e) for e in [*emails, "never@example.com"]]
        )
        assert outcomes[:25] == [{"list_id": "list1", "erased": True}] * 25
        assert outcomes[25] == {"list_id": "list1", "erased": False}
        assert sorted(slow.deleted) == sorted(emails)
        assert 1 < slow.max_in_flight <= 10
        call = slow.calls(
            "POST", f"/3.0/lists/list1/members/{md5('e0@example.com')}/actions/delete-permanent"
        )
        assert len(call) == 1
        assert call[0].body == b""
    finally:
        await slow.stop()


async def test_health_pings(mailchimp: FakeMailchimp, make: Make) -> None:
    await make().health()
    assert mailchimp.calls("GET", "/3.0/ping")


def test_host_comes_from_the_key_and_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MC_KEY", API_KEY)
    connector = MailchimpConnector("mc", {"api_key": "env:MC_KEY"}, InMemoryState())
    assert connector.base_url == "https://us21.api.mailchimp.com"
    assert purposes_of(connector) == {"email_marketing"}
    effective = with_connector_defaults(
        {"mc": ConnectorSettings(kind="mailchimp")}, {"mc": connector}
    )
    assert effective["mc"].max_concurrency == 10
    monkeypatch.setenv("MC_KEY", "nodatacentre")
    with pytest.raises(ValueError, match="no data-centre suffix"):
        MailchimpConnector("mc", {"api_key": "env:MC_KEY"}, InMemoryState())
    with pytest.raises(ValueError, match="option 'api_key' is required"):
        MailchimpConnector("mc", {}, InMemoryState())


async def test_a_step_without_a_list_fails_permanently(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MC_KEY", API_KEY)
    connector = MailchimpConnector("mc", {"api_key": "env:MC_KEY"}, InMemoryState())
    with pytest.raises(PermanentConnectorError, match=r"needs params\.list_id"):
        await connector.invoke("lists.subscribe", item("a@example.com").payload, InvokeContext("k"))


async def test_erase_without_email_needs_the_member_id(
    mailchimp: FakeMailchimp, make: Make
) -> None:
    connector = make()
    await connector.invoke("lists.subscribe", item("m@example.com").payload, InvokeContext("k"))
    stub = {"contact": {"id": "c1", "external_ids": {"mailchimp": md5("m@example.com")}}}
    assert await connector.invoke("contacts.erase", stub, InvokeContext("k2")) == {
        "list_id": "list1",
        "erased": True,
    }
    with pytest.raises(
        PermanentConnectorError, match="needs the contact's email or its Mailchimp id"
    ):
        await connector.invoke("contacts.erase", {"contact": {"id": "c2"}}, InvokeContext("k3"))
