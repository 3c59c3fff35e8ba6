"""A trigger delivered through a real Switchboard server to the vendors' contract servers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.v1 import campaigns_pb2, contacts_pb2
from tests.connectors.vendors.contract import ContractServer, Reply
from tests.connectors.vendors.rest_api import CLIENT_ID, RestTool

StartApp = Callable[..., Awaitable[App]]


async def test_signup_reaches_segment_and_a_declared_rest_tool(
    start_app: StartApp, segment_server: ContractServer, rest_tool: RestTool
) -> None:
    url = segment_server.url  # one contract server carries both vendors' routes
    # The dispatcher batches Segment events: the identify goes out through /v1/batch.
    segment_server.script["/v1/batch"].append(Reply(503, "try later"))
    connectors = {
        "segment": {
            "kind": "segment",
            "options": {"write_key": "env:SEGMENT_WRITE_KEY", "base_url": f"{url}/v1"},
        },
        "crm": {
            "kind": "http",
            "options": {
                "base_url": f"{url}/v1",
                "purposes": ["email_marketing"],
                "auth": {
                    "type": "oauth2_client_credentials",
                    "token_url": f"{url}/oauth/token",
                    "client_id": CLIENT_ID,
                    "client_secret": "env:CRM_CLIENT_SECRET",
                },
                "actions": {
                    "contacts.upsert": {
                        "method": "PUT",
                        "url": "/people/{{ contact.id }}",
                        "body": {"id": "{{ contact.id }}", "email": "{{ contact.email }}"},
                        "result": {"crm_id": "{{ body.id }}"},
                    }
                },
            },
        },
    }
    triggers = {
        "signup": {
            "steps": [
                {"connector": "segment", "action": "identify"},
                {"connector": "crm", "action": "contacts.upsert"},
            ]
        }
    }
    # "crm" here is a declared REST tool with no erase action: no contact sync to it.
    app = await start_app(connectors=connectors, triggers=triggers, sync={"destinations": {}})
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        # Both tools serve a consent purpose: the person has given both.
        consents = {
            purpose: contacts_pb2.Consent(opt_in=True, source="signup form")
            for purpose in ("analytics", "email_marketing")
        }
        run = await sb.campaigns.trigger(
            "signup",
            email="e2e@example.com",
            contact=contacts_pb2.Contact(consents=consents),
            wait=True,
        )

    assert run.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
    assert [s.attempts for s in run.steps] == [2, 1]  # the 503 was retried
    identifies = [e for c in segment_server.calls("/v1/batch") for e in c.json()["batch"]]
    assert [e["type"] for e in identifies] == ["identify"] * 2
    assert [e["messageId"] for e in identifies] == [f"{run.id}:0"] * 2
    assert identifies[-1]["traits"]["email"] == "e2e@example.com"
    assert rest_tool.people[run.contact_id]["email"] == "e2e@example.com"
    assert segment_server.violations == []
