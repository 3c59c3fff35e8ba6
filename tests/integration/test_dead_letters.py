"""Dead letters: what gives up is kept with its reason; redrive replays it with the same key."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from switchboard.client import Switchboard, SyncSwitchboard
from switchboard.server.app.build import App
from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.errors import PermanentConnectorError
from switchboard.v1 import campaigns_pb2, connectors_pb2, connectors_pb2_grpc

StartApp = Callable[..., Awaitable[App]]
PING = {"demo.ping": {"steps": [{"connector": "fake", "action": "echo"}]}}


def _fake(app: App, name: str = "fake") -> FakeConnector:
    fake = app.connectors[name]
    assert isinstance(fake, FakeConnector)
    return fake


async def _wait_end(sb: Switchboard, run_id: str) -> campaigns_pb2.Run:
    run = await sb.campaigns.get_run(run_id)
    async for run in sb.campaigns.watch(run_id):  # noqa: B007 - the last one is the answer
        pass
    return run


async def _started(start_app: StartApp, **fake_options: Any) -> App:
    connectors = {"fake": {"kind": "fake", "max_attempts": 3, "options": fake_options}}
    return await start_app(connectors=connectors, triggers=PING)


async def test_permanent_error_is_dead_lettered_after_one_call(start_app: StartApp) -> None:
    app = await _started(start_app)
    _fake(app).script("echo", PermanentConnectorError("422 contact rejected"))
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger("demo.ping", email="perm@example.com", wait=True)
        letters = (await sb.connectors.list_dead_letters()).dead_letters
    assert run.status == campaigns_pb2.RUN_STATUS_FAILED
    assert len(_fake(app).calls) == 1
    assert len(letters) == 1
    letter = letters[0]
    assert letter.reason == connectors_pb2.DEAD_LETTER_REASON_PERMANENT_ERROR
    assert (letter.run_id, letter.step_index, letter.connector) == (run.id, 0, "fake")
    assert (letter.action, letter.contact_id) == ("echo", run.contact_id)
    assert letter.attempts == 1
    assert "422 contact rejected" in letter.last_error
    assert letter.idempotency_key == f"{run.id}:0"


async def test_exhausted_step_is_dead_lettered_then_redriven_with_the_same_key(
    start_app: StartApp,
) -> None:
    app = await _started(start_app, fail_times=3)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger("demo.ping", email="exh@example.com", wait=True)
        [letter] = (await sb.connectors.list_dead_letters()).dead_letters
        assert letter.reason == connectors_pb2.DEAD_LETTER_REASON_RETRIES_EXHAUSTED
        assert letter.attempts == 3
        assert len(_fake(app).calls) == 3

        redriven = await sb.connectors.redrive_dead_letters([letter.id])
        assert [r.id for r in redriven] == [letter.id]
        done = await _wait_end(sb, run.id)
        remaining = (await sb.connectors.list_dead_letters()).dead_letters
    assert done.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
    assert done.steps[0].attempts == 1  # a fresh attempt budget
    assert remaining == []
    keys = [ctx.idempotency_key for _, _, ctx in _fake(app).calls]
    assert keys == [f"{run.id}:0"] * 4


async def test_redrive_by_connector_and_all(start_app: StartApp) -> None:
    connectors = {
        "fake": {"kind": "fake", "options": {}},
        "other": {"kind": "fake", "options": {}},
    }
    triggers = {
        "a": {"steps": [{"connector": "fake", "action": "echo"}]},
        "b": {"steps": [{"connector": "other", "action": "echo"}]},
    }
    app = await start_app(connectors=connectors, triggers=triggers)
    _fake(app).script("echo", *[PermanentConnectorError("no")] * 2)
    _fake(app, "other").script("echo", PermanentConnectorError("no"))
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        runs = [
            await sb.campaigns.trigger(event, email=f"{i}@example.com", wait=True)
            for i, event in enumerate(["a", "a", "b"])
        ]
        only_other = (await sb.connectors.list_dead_letters(connector="other")).dead_letters
        assert [d.run_id for d in only_other] == [runs[2].id]
        by_connector = await sb.connectors.redrive_dead_letters(connector="fake")
        assert sorted(d.run_id for d in by_connector) == sorted(r.id for r in runs[:2])
        rest = await sb.connectors.redrive_dead_letters(all=True)
        assert [d.run_id for d in rest] == [runs[2].id]
        ended = [await _wait_end(sb, r.id) for r in runs]
    assert [r.status for r in ended] == [campaigns_pb2.RUN_STATUS_SUCCEEDED] * 3


async def test_dead_letters_page(start_app: StartApp) -> None:
    app = await _started(start_app)
    _fake(app).script("echo", *[PermanentConnectorError("no")] * 3)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        for i in range(3):
            await sb.campaigns.trigger("demo.ping", email=f"p{i}@example.com", wait=True)
        first = await sb.connectors.list_dead_letters(page_size=2)
        second = await sb.connectors.list_dead_letters(
            page_size=2, page_token=first.next_page_token
        )
    assert len(first.dead_letters) == 2
    assert len(second.dead_letters) == 1
    assert second.next_page_token == ""
    ids = [d.id for d in [*first.dead_letters, *second.dead_letters]]
    assert ids == sorted(set(ids))


async def test_fallback_that_works_leaves_no_dead_letter(start_app: StartApp) -> None:
    triggers = {
        "demo.ping": {
            "steps": [
                {"connector": "fake", "action": "echo", "fallback": {"result": {"offer": "D"}}}
            ]
        }
    }
    connectors = {"fake": {"kind": "fake", "options": {"fail_mode": "permanent", "fail_times": 1}}}
    app = await start_app(connectors=connectors, triggers=triggers)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger("demo.ping", email="fb@example.com", wait=True)
        letters = (await sb.connectors.list_dead_letters()).dead_letters
    assert run.steps[0].status == campaigns_pb2.STEP_STATUS_FALLBACK
    assert letters == []


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        pytest.param(
            connectors_pb2.RedriveDeadLettersRequest(), grpc.StatusCode.INVALID_ARGUMENT, id="none"
        ),
        pytest.param(
            connectors_pb2.RedriveDeadLettersRequest(all=False),
            grpc.StatusCode.INVALID_ARGUMENT,
            id="all-false",
        ),
        pytest.param(
            connectors_pb2.RedriveDeadLettersRequest(ids=connectors_pb2.DeadLetterIds(ids=["x"])),
            grpc.StatusCode.INVALID_ARGUMENT,
            id="bad-id",
        ),
        pytest.param(
            connectors_pb2.RedriveDeadLettersRequest(
                ids=connectors_pb2.DeadLetterIds(ids=["d_" + "0" * 26])
            ),
            grpc.StatusCode.NOT_FOUND,
            id="unknown-id",
        ),
    ],
)
async def test_redrive_refuses_bad_selections(
    channel: grpc.aio.Channel,
    request_: connectors_pb2.RedriveDeadLettersRequest,
    code: grpc.StatusCode,
) -> None:
    stub = connectors_pb2_grpc.ConnectorsStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.RedriveDeadLetters(request_, timeout=5)
    assert info.value.code() == code


async def test_client_needs_exactly_one_selector(sb: Switchboard) -> None:
    with pytest.raises(TypeError, match="exactly one"):
        await sb.connectors.redrive_dead_letters(["dl_x"], all=True)


async def test_sync_client_lists_and_redrives(start_app: StartApp) -> None:
    app = await _started(start_app)
    _fake(app).script("echo", PermanentConnectorError("no"))
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger("demo.ping", email="sync@example.com", wait=True)

    def blocking() -> tuple[list[str], list[str]]:
        with SyncSwitchboard(f"127.0.0.1:{app.port}") as client:
            listed = client.connectors.list_dead_letters().dead_letters
            redriven = client.connectors.redrive_dead_letters(connector="fake")
        return [d.run_id for d in listed], [d.run_id for d in redriven]

    listed, redriven = await asyncio.to_thread(blocking)
    assert listed == redriven == [run.id]
