"""A trigger step delivered by the webhook connector through a real server to a local peer."""

from __future__ import annotations

import base64
from collections.abc import Awaitable, Callable

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.v1 import campaigns_pb2, connectors_pb2
from tests.connectors.http_peer import HttpPeer, Reply

StartApp = Callable[..., Awaitable[App]]
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


async def test_retried_webhook_step_keeps_its_id_and_lands_once(start_app: StartApp) -> None:
    with HttpPeer() as peer:
        peer.script.extend([Reply(503), Reply(429, headers={"retry-after": "0"})])
        connectors = {
            "hook": {"kind": "webhook", "options": {"url": peer.url, "secret": SECRET}},
        }
        triggers = {"ping": {"steps": [{"connector": "hook", "action": "webhook.post"}]}}
        app = await start_app(connectors=connectors, triggers=triggers)
        async with Switchboard(f"127.0.0.1:{app.port}") as sb:
            run = await sb.campaigns.trigger("ping", email="wh@example.com", wait=True)
    assert run.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
    assert run.steps[0].attempts == 3
    assert {r.headers["webhook-id"] for r in peer.received} == {f"{run.id}:0"}
    assert len(peer.received) == 3
    assert peer.received[-1].json()["data"]["contact"]["email"] == "wh@example.com"


async def test_webhook_that_refuses_is_dead_lettered(start_app: StartApp) -> None:
    with HttpPeer() as peer:
        peer.script.append(Reply(400, b"bad request"))
        connectors = {"hook": {"kind": "webhook", "options": {"url": peer.url, "secret": SECRET}}}
        triggers = {"ping": {"steps": [{"connector": "hook", "action": "webhook.post"}]}}
        app = await start_app(connectors=connectors, triggers=triggers)
        async with Switchboard(f"127.0.0.1:{app.port}") as sb:
            await sb.campaigns.trigger("ping", email="wh400@example.com", wait=True)
            [letter] = (await sb.connectors.list_dead_letters(connector="hook")).dead_letters
    assert letter.reason == connectors_pb2.DEAD_LETTER_REASON_PERMANENT_ERROR
    assert "HTTP 400" in letter.last_error
    assert len(peer.received) == 1
