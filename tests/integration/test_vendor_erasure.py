"""Erasure reaches HubSpot and Mailchimp by email, and leaves no trace of the address.

No write-back of vendor ids is configured: the erase calls can only name the person by
email, which the erasure run carries sealed until its deliveries end.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.v1 import campaigns_pb2
from tests.connectors.vendors.hubspot_server import FakeHubSpot
from tests.connectors.vendors.hubspot_server import error as hubspot_error
from tests.connectors.vendors.mailchimp_server import API_KEY, FakeMailchimp, md5
from tests.connectors.vendors.recording_server import Canned

StartApp = Callable[..., Awaitable[App]]
EMAIL = "Erase.Me.Please@Example.com"
ADDRESS = EMAIL.lower()
DONE = (campaigns_pb2.RUN_STATUS_SUCCEEDED, campaigns_pb2.RUN_STATUS_FAILED)


@pytest.fixture
async def vendors(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[FakeHubSpot, FakeMailchimp]]:
    hubspot, mailchimp = FakeHubSpot("pat-na1-erase"), FakeMailchimp()
    await hubspot.start()
    await mailchimp.start()
    monkeypatch.setenv("HUBSPOT_TOKEN", "pat-na1-erase")
    monkeypatch.setenv("MAILCHIMP_API_KEY", API_KEY)
    yield hubspot, mailchimp
    await hubspot.stop()
    await mailchimp.stop()


def _settings(hubspot: FakeHubSpot, mailchimp: FakeMailchimp) -> dict[str, object]:
    return {
        "connectors": {
            "hubspot": {
                "kind": "hubspot",
                "options": {"base_url": hubspot.url, "access_token": "env:HUBSPOT_TOKEN"},
            },
            "mailchimp": {
                "kind": "mailchimp",
                "options": {
                    "base_url": mailchimp.url,
                    "api_key": "env:MAILCHIMP_API_KEY",
                    "list_id": "list1",
                },
            },
        },
        # No trigger: the erasure run is the destinations' erase actions alone.
        "triggers": {},
        "sync": {
            "destinations": {
                "hubspot": {"connector": "hubspot"},
                "mailchimp": {"connector": "mailchimp", "action": "lists.subscribe"},
            }
        },
    }


async def _runs(sb: Switchboard, contact_id: str, event: str) -> list[campaigns_pb2.Run]:
    async with asyncio.timeout(20):
        while True:
            runs = list((await sb.campaigns.list_runs(contact_id=contact_id, event=event)).runs)
            if runs and all(r.status in DONE for r in runs):
                return runs
            await asyncio.sleep(0.05)


def _files_holding(db: Path, needle: str) -> list[str]:
    return [
        p.name for p in sorted(db.parent.glob(db.name + "*")) if needle.encode() in p.read_bytes()
    ]


async def test_delete_contact_erases_by_email_in_hubspot_and_mailchimp(
    start_app: StartApp, vendors: tuple[FakeHubSpot, FakeMailchimp]
) -> None:
    hubspot, mailchimp = vendors
    app = await start_app(**_settings(hubspot, mailchimp))
    db = Path(app.settings.database.path)
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        upserted = await sb.contacts.upsert(
            email=EMAIL, first_name="Erin", consent=True, consent_source="web"
        )
        contact_id = upserted.contact.id
        [synced] = await _runs(sb, contact_id, "contact.changed")
        assert synced.status == campaigns_pb2.RUN_STATUS_SUCCEEDED, synced
        assert ADDRESS in hubspot.contacts
        assert md5(ADDRESS) in mailchimp.members["list1"]
        assert _files_holding(db, ADDRESS)  # the address did reach the files

        await sb.contacts.delete(id=contact_id)
        [erased] = await _runs(sb, contact_id, "contact.erased")

    assert erased.status == campaigns_pb2.RUN_STATUS_SUCCEEDED, erased
    [gdpr] = hubspot.calls("POST", "/crm/v3/objects/contacts/gdpr-delete")
    assert json.loads(gdpr.body) == {"objectId": ADDRESS, "idProperty": "email"}
    assert hubspot.erased == [ADDRESS]
    path = f"/3.0/lists/list1/members/{md5(ADDRESS)}/actions/delete-permanent"
    [delete] = mailchimp.calls("POST", path)
    assert delete.body == b""
    assert mailchimp.deleted == [ADDRESS]
    # Every destination was told, and nothing stored names the person any more.
    steps = {(s.connector, s.action): s.status for s in erased.steps}
    assert steps[("hubspot", "contacts.erase")] == campaigns_pb2.STEP_STATUS_SUCCEEDED
    assert steps[("mailchimp", "contacts.erase")] == campaigns_pb2.STEP_STATUS_SUCCEEDED
    assert _files_holding(db, ADDRESS) == []


async def test_a_refused_erasure_keeps_no_trace_of_the_email_the_tool_quoted(
    start_app: StartApp, vendors: tuple[FakeHubSpot, FakeMailchimp]
) -> None:
    hubspot, mailchimp = vendors
    app = await start_app(**_settings(hubspot, mailchimp))
    db = Path(app.settings.database.path)
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        upserted = await sb.contacts.upsert(email=EMAIL, consent=True, consent_source="web")
        contact_id = upserted.contact.id
        await _runs(sb, contact_id, "contact.changed")
        # HubSpot refuses the delete and quotes the address back (a validation error).
        hubspot.fail_next.append(Canned(400, hubspot_error(f"Cannot delete {ADDRESS} now")))
        await sb.contacts.delete(id=contact_id)
        [erased] = await _runs(sb, contact_id, "contact.erased")
        [letter] = (await sb.connectors.list_dead_letters(connector="hubspot")).dead_letters

    assert erased.status == campaigns_pb2.RUN_STATUS_FAILED
    assert "Cannot delete (the erased contact's email) now" in letter.last_error
    assert mailchimp.deleted == [ADDRESS]
    assert _files_holding(db, ADDRESS) == []
