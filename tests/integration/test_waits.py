"""Wait steps: a run pauses until a correlated inbound event, or a timeout, picks a branch."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.server.common.signing import sign
from switchboard.server.connectors.fake import FakeConnector
from switchboard.v1 import campaigns_pb2

StartApp = Callable[..., Awaitable[App]]
KEY = b"w" * 32
SECRET = "whsec_" + base64.b64encode(KEY).decode()
Step = campaigns_pb2.StepStatus


def _triggers(timeout_s: float) -> dict[str, Any]:
    wait = {
        "source": "ats",
        "key": "attributes.application_id",
        "timeout_s": timeout_s,
        "timeout_branch": "expired",
        "branches": {
            "approved": [{"connector": "fake", "action": "echo", "params": {"say": "welcome"}}],
            "expired": [{"connector": "fake", "action": "echo", "params": {"say": "reminder"}}],
        },
    }
    steps = [
        {"connector": "fake", "action": "echo", "params": {"say": "received"}},
        {"wait": wait},
        {"connector": "fake", "action": "echo", "params": {"say": "done"}},
    ]
    return {"application.submitted": {"steps": steps}}


async def _start(start_app: StartApp, timeout_s: float) -> App:
    inbound = {
        "listen": "127.0.0.1:0",
        "sources": {
            "ats": {
                "secrets": [SECRET],
                "correlation_field": "application_id",
                "branch_field": "decision",
            }
        },
    }
    return await start_app(
        connectors={"fake": {"kind": "fake"}}, triggers=_triggers(timeout_s), inbound=inbound
    )


async def _send(app: App, event: dict[str, Any], msg_id: str) -> httpx.Response:
    assert app.inbound is not None
    body = json.dumps(event).encode()
    stamp = int(time.time())
    headers = {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(KEY, msg_id, stamp, body),
    }
    url = f"http://127.0.0.1:{app.inbound.port}/webhooks/ats"
    async with httpx.AsyncClient() as client:
        return await client.post(url, content=body, headers=headers)


def _said(app: App) -> list[str]:
    fake = app.connectors["fake"]
    assert isinstance(fake, FakeConnector)
    return [payload["params"]["say"] for _, payload, _ in fake.calls]


async def test_event_resumes_the_run_on_its_branch(start_app: StartApp) -> None:
    app = await _start(start_app, timeout_s=3600)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger(
            "application.submitted", email="cand@example.com", attributes={"application_id": "A-1"}
        )
        async for seen in sb.campaigns.watch(run.id):
            if seen.steps[1].status == Step.STEP_STATUS_WAITING:
                break
        event = {"application_id": "A-1", "decision": "approved"}
        first = await _send(app, event, "evt_1")
        again = await _send(app, event, "evt_1")  # a redelivery resumes nothing new
        ended = [r async for r in sb.campaigns.watch(run.id)][-1]
    assert first.json() == {"resumed": [run.id]}
    assert again.json() == {"resumed": [run.id]}
    assert ended.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
    assert [s.action for s in ended.steps] == ["echo", "wait", "echo", "echo"]
    assert ended.steps[1].result["branch"] == "approved"
    assert [s.index for s in ended.steps] == [0, 1, 2, 3]
    assert _said(app) == ["received", "welcome", "done"]


async def test_timeout_takes_the_timeout_branch(start_app: StartApp) -> None:
    app = await _start(start_app, timeout_s=0.2)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger(
            "application.submitted", email="late@example.com", attributes={"application_id": "B"}
        )
        ended = [r async for r in sb.campaigns.watch(run.id)][-1]
    assert ended.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
    assert ended.steps[1].result["branch"] == "expired"
    assert ended.steps[1].result["timed_out"] is True
    assert _said(app) == ["received", "reminder", "done"]


async def test_an_event_for_another_key_resumes_nothing(start_app: StartApp) -> None:
    app = await _start(start_app, timeout_s=3600)
    response = await _send(app, {"application_id": "nobody", "decision": "approved"}, "evt_9")
    assert response.json() == {"resumed": []}
    events = await app.store.read(lambda tx: tx.events("ats:nobody"))
    assert [t for t, _ in events] == ["inbound.received"]  # recorded before the 200


def test_a_wait_needs_a_correlated_source(make_settings: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="correlation_field"):
        make_settings(connectors={"fake": {"kind": "fake"}}, triggers=_triggers(1.0))
