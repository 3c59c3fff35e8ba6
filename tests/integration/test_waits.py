"""Wait steps: a run pauses until a correlated inbound event, or a timeout, picks a branch."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from switchboard.client import Switchboard
from switchboard.server.app.build import App, build_app
from switchboard.server.common.signing import sign
from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.store.sqlite.schema import REKEY_WAITS
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


def _overrides(timeout_s: float) -> dict[str, Any]:
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
    return {
        "connectors": {"fake": {"kind": "fake"}},
        "triggers": _triggers(timeout_s),
        "inbound": inbound,
    }


async def _start(start_app: StartApp, timeout_s: float) -> App:
    return await start_app(**_overrides(timeout_s))


async def _send(app: App, event: dict[str, Any], msg_id: str) -> httpx.Response:
    assert app.inbound is not None
    body = json.dumps(event).encode()
    stamp = int(time.time())
    headers = {
        "content-type": "application/json",
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


async def _trigger_and_park(sb: Switchboard, attributes: dict[str, Any]) -> str:
    run = await sb.campaigns.trigger(
        "application.submitted", email="num@example.com", attributes=attributes
    )
    async for seen in sb.campaigns.watch(run.id):
        if seen.steps[1].status == Step.STEP_STATUS_WAITING:
            break
    return str(run.id)


@pytest.mark.parametrize(
    ("run_value", "event_value"),
    [
        # The run's attributes are a protobuf Struct, which holds every number as a double.
        pytest.param(4711, 4711, id="integer"),
        pytest.param(4711, 4711.0, id="integer-and-integral-float"),
        pytest.param(47.5, 47.5, id="fraction"),
        pytest.param("4711", 4711, id="text-and-number"),
        pytest.param(True, True, id="boolean"),
        pytest.param(True, "true", id="boolean-and-text"),
        pytest.param("A-1", "A-1", id="text"),
    ],
)
async def test_equal_json_values_resume_the_wait(
    start_app: StartApp, run_value: Any, event_value: Any
) -> None:
    app = await _start(start_app, timeout_s=3600)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run_id = await _trigger_and_park(sb, {"application_id": run_value})
        answer = await _send(app, {"application_id": event_value, "decision": "approved"}, "n1")
        assert answer.json() == {"resumed": [run_id]}
        ended = [r async for r in sb.campaigns.watch(run_id)][-1]
    assert ended.steps[1].result["branch"] == "approved"
    assert _said(app) == ["received", "welcome", "done"]


@pytest.mark.parametrize(
    ("run_value", "event_value"),
    [
        pytest.param(4711, 4712, id="other-number"),
        pytest.param(4711, "4711.0", id="number-and-float-text"),
        pytest.param(1, True, id="one-and-true"),
        # Past 2**53 the run's double may be another id rounded: never match, never mix up.
        pytest.param(2**53 + 1, 2**53, id="beyond-exact-doubles"),
    ],
)
async def test_different_values_resume_nothing(
    start_app: StartApp, run_value: Any, event_value: Any
) -> None:
    app = await _start(start_app, timeout_s=3600)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        await _trigger_and_park(sb, {"application_id": run_value})
        answer = await _send(app, {"application_id": event_value, "decision": "approved"}, "n2")
    assert answer.json() == {"resumed": []}


@pytest.mark.parametrize(
    ("value", "legacy_key"),
    [
        pytest.param(4711, "4711.0", id="integer"),
        pytest.param(True, "True", id="boolean"),
        pytest.param(47.5, "47.5", id="fraction"),
    ],
)
async def test_runs_waiting_before_the_upgrade_resume_after_it(
    start_app: StartApp, make_settings: Callable[..., Any], value: Any, legacy_key: str
) -> None:
    old = await build_app(make_settings(**_overrides(3600)))
    await old.start()
    try:
        async with Switchboard(f"127.0.0.1:{old.port}") as sb:
            run_id = await _trigger_and_park(sb, {"application_id": value})
    finally:
        await old.stop(grace_s=1.0)
    # Put the waits back as the previous release left them (str() of the Struct's value),
    # then apply the rewrite as the upgrade does. Not by rewinding `user_version`: that
    # would also re-run the migrations after it, which cannot run twice (ALTER TABLE).
    db = sqlite3.connect(old.settings.database.path)
    with db:
        db.execute("UPDATE waits SET key = ? WHERE run_id = ?", (legacy_key, run_id))
    db.executescript(f"BEGIN; {REKEY_WAITS} COMMIT;")
    db.close()
    app = await _start(start_app, timeout_s=3600)
    answer = await _send(app, {"application_id": value, "decision": "approved"}, "up1")
    assert answer.json() == {"resumed": [run_id]}


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
