"""A signup flow through a real Switchboard server to the HubSpot and Mailchimp contract servers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.v1 import campaigns_pb2, contacts_pb2
from tests.connectors.vendors.hubspot_server import FakeHubSpot
from tests.connectors.vendors.mailchimp_server import API_KEY, FakeMailchimp, md5
from tests.connectors.vendors.recording_server import Canned

StartApp = Callable[..., Awaitable[App]]


@pytest.fixture
async def vendors(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[FakeHubSpot, FakeMailchimp]]:
    hubspot, mailchimp = FakeHubSpot("pat-na1-e2e"), FakeMailchimp()
    await hubspot.start()
    await mailchimp.start()
    monkeypatch.setenv("HUBSPOT_TOKEN", "pat-na1-e2e")
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    yield hubspot, mailchimp
    await hubspot.stop()
    await mailchimp.stop()


async def test_signup_reaches_hubspot_and_mailchimp(
    start_app: StartApp, vendors: tuple[FakeHubSpot, FakeMailchimp]
) -> None:
    hubspot, mailchimp = vendors
    # HubSpot throttles the first call: the step waits the Retry-After and succeeds.
    hubspot.fail_next.append(
        Canned(
            429,
            {
                "status": "error",
                "message": "ten_secondly_rolling",
                "policyName": "TEN_SECONDLY_ROLLING",
            },
            {"Retry-After": "0"},
        )
    )
    connectors = {
        "crm": {
            "kind": "hubspot",
            "options": {"base_url": hubspot.url, "access_token": "env:HUBSPOT_TOKEN"},
        },
        "mail": {
            "kind": "mailchimp",
            "options": {
                "base_url": mailchimp.url,
                "api_key": "env:MAILCHIMP_API_KEY",
                "list_id": "list1",
            },
        },
    }
    triggers = {
        "newsletter.signup": {
            "steps": [
                {"connector": "crm", "action": "contacts.upsert"},
                {"connector": "crm", "action": "lists.add", "params": {"list_id": "7"}},
                {"connector": "mail", "action": "lists.subscribe", "params": {"tags": ["web"]}},
            ]
        }
    }
    app = await start_app(connectors=connectors, triggers=triggers)
    opted_in = contacts_pb2.Contact(consent=contacts_pb2.Consent(opt_in=True, source="web"))
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger(
            "newsletter.signup", email="E2E@example.com", contact=opted_in, wait=True
        )
    assert run.status == campaigns_pb2.RUN_STATUS_SUCCEEDED, run
    assert [s.attempts for s in run.steps] == [2, 1, 1]
    record = hubspot.contacts["e2e@example.com"]
    assert hubspot.lists["7"] == {record["id"]}
    member = mailchimp.members["list1"][md5("e2e@example.com")]
    assert member["status"] == "subscribed"
    assert member["tags"] == ["web"]


async def test_a_vendor_validation_error_dead_letters_with_the_vendors_message(
    start_app: StartApp, vendors: tuple[FakeHubSpot, FakeMailchimp]
) -> None:
    _, mailchimp = vendors
    connectors = {
        "mail": {
            "kind": "mailchimp",
            # Merge tags must be upper case: Mailchimp refuses the member as invalid.
            "options": {
                "base_url": mailchimp.url,
                "api_key": "env:MAILCHIMP_API_KEY",
                "list_id": "list1",
                "merge_fields": {"fname": "first_name"},
            },
        },
    }
    triggers = {"signup": {"steps": [{"connector": "mail", "action": "lists.subscribe"}]}}
    app = await start_app(connectors=connectors, triggers=triggers)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        await sb.contacts.upsert(email="bad@example.com", first_name="Bad")
        opted_in = contacts_pb2.Contact(consent=contacts_pb2.Consent(opt_in=True, source="web"))
        run = await sb.campaigns.trigger(
            "signup", email="bad@example.com", contact=opted_in, wait=True
        )
        [letter] = (await sb.connectors.list_dead_letters(connector="mail")).dead_letters
    assert run.status == campaigns_pb2.RUN_STATUS_FAILED
    assert "Your merge fields were invalid" in letter.last_error
    # Sent once, not retried: the dispatcher batches subscriptions (one batch call here).
    member_puts = mailchimp.calls("PUT", f"/3.0/lists/list1/members/{md5('bad@example.com')}")
    assert len(member_puts) + len(mailchimp.calls("POST", "/3.0/lists/list1")) == 1
