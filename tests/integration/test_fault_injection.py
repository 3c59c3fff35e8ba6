"""Fault injection with the scriptable fake: exact attempt counts, breaker, isolation, order."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError
from switchboard.v1 import campaigns_pb2

StartApp = Callable[..., Awaitable[App]]
Run = campaigns_pb2.Run
OK = campaigns_pb2.RUN_STATUS_SUCCEEDED
CAP = 4


def _fake(app: App, name: str = "fake") -> FakeConnector:
    fake = app.connectors[name]
    assert isinstance(fake, FakeConnector)
    return fake


def _ping(connector: str = "fake", **step: Any) -> dict[str, Any]:
    return {"steps": [{"connector": connector, "action": "echo", **step}]}


async def _wait_end(sb: Switchboard, run_id: str) -> Run:
    run = await sb.campaigns.get_run(run_id)
    async for run in sb.campaigns.watch(run_id):  # noqa: B007 - the last one is the answer
        pass
    return run


async def _wait_for(predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - the state lives in another component
            await asyncio.sleep(0.01)


@pytest.mark.parametrize(
    "failures",
    [pytest.param(0, id="none"), pytest.param(1, id="one"), pytest.param(CAP - 1, id="cap-1")],
)
async def test_transient_failures_below_the_cap_cost_one_extra_call_each(
    start_app: StartApp, failures: int
) -> None:
    connectors = {"fake": {"kind": "fake", "max_attempts": CAP}}
    app = await start_app(connectors=connectors, triggers={"ping": _ping()})
    _fake(app).script("echo", *[RetryableConnectorError("503")] * failures)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger("ping", email="n@example.com", wait=True)
        letters = (await sb.connectors.list_dead_letters()).dead_letters
    assert run.status == OK
    assert len(_fake(app).calls) == failures + 1
    assert run.steps[0].attempts == failures + 1
    assert letters == []


async def test_failures_at_the_cap_make_exactly_cap_calls_and_one_dead_letter(
    start_app: StartApp,
) -> None:
    connectors = {"fake": {"kind": "fake", "max_attempts": CAP, "breaker_failures": 100}}
    app = await start_app(connectors=connectors, triggers={"ping": _ping()})
    _fake(app).script("echo", *[RetryableConnectorError("503")] * (CAP + 5))
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger("ping", email="cap@example.com", wait=True)
        letters = (await sb.connectors.list_dead_letters()).dead_letters
    assert run.status == campaigns_pb2.RUN_STATUS_FAILED
    assert len(_fake(app).calls) == CAP
    assert [(d.run_id, d.attempts) for d in letters] == [(run.id, CAP)]


async def test_permanent_error_costs_one_call(start_app: StartApp) -> None:
    connectors = {"fake": {"kind": "fake", "max_attempts": CAP}}
    app = await start_app(connectors=connectors, triggers={"ping": _ping()})
    _fake(app).script("echo", PermanentConnectorError("400 bad email"))
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger("ping", email="p@example.com", wait=True)
    assert run.steps[0].status == campaigns_pb2.STEP_STATUS_FAILED
    assert len(_fake(app).calls) == 1


async def test_breaker_opens_holds_steps_without_calls_then_closes(start_app: StartApp) -> None:
    connectors = {
        "fake": {
            "kind": "fake",
            "max_attempts": 10,
            "breaker_failures": 2,
            "breaker_cooldown_s": 0.3,
            "options": {"fail_times": 2},
        }
    }
    app = await start_app(connectors=connectors, triggers={"ping": _ping()})
    fake = _fake(app)
    breaker = app.dispatcher.guards["fake"].breaker
    states: list[str] = []
    invoke = fake.invoke

    async def spy(action: str, payload: dict[str, Any], ctx: Any) -> dict[str, Any]:
        states.append(breaker.state)  # what the breaker said when a call got through
        return await invoke(action, payload, ctx)

    fake.invoke = spy  # type: ignore[method-assign]
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        first = await sb.campaigns.trigger("ping", email="b1@example.com")
        await _wait_for(lambda: breaker.state == "open")
        second = await sb.campaigns.trigger("ping", email="b2@example.com")
        ended = [await _wait_end(sb, r.id) for r in (first, second)]
    assert [r.status for r in ended] == [OK, OK]
    assert "open" not in states  # no call while open
    assert states == ["closed", "closed", "half_open", "closed"]  # two failures, probe, rest
    assert ended[1].steps[0].attempts == 1  # the held step spent no attempt while waiting
    assert breaker.state == "closed"


async def test_a_slow_connector_does_not_delay_others(start_app: StartApp) -> None:
    connectors = {
        "slow": {"kind": "fake", "max_concurrency": 2, "options": {"latency_s": 3.0}},
        "fast": {"kind": "fake"},
    }
    triggers = {"slow": _ping("slow"), "fast": _ping("fast")}
    dispatch = {"poll_interval_s": 0.05, "concurrency": 4}
    app = await start_app(connectors=connectors, triggers=triggers, dispatch=dispatch)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        slow = [await sb.campaigns.trigger("slow", email=f"s{i}@example.com") for i in range(8)]
        fast = await sb.campaigns.trigger("fast", email="f@example.com", wait=True)
        pending = [(await sb.campaigns.get_run(r.id)).status != OK for r in slow]
    assert fast.status == OK
    assert sum(pending) >= 6  # at most two slow steps can have finished meanwhile
    assert app.dispatcher.guards["slow"].in_flight <= 2


async def test_fallback_action_on_another_connector_is_recorded(start_app: StartApp) -> None:
    connectors = {
        "fake": {"kind": "fake", "options": {"fail_mode": "permanent", "fail_times": 1}},
        "backup": {"kind": "fake", "options": {"actions": ["offers.default"]}},
    }
    step = {"fallback": {"connector": "backup", "action": "offers.default", "params": {"o": 1}}}
    app = await start_app(connectors=connectors, triggers={"ping": _ping(**step)})
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger("ping", email="fb@example.com", wait=True)
    assert run.status == OK
    assert run.steps[0].status == campaigns_pb2.STEP_STATUS_FALLBACK
    assert run.steps[0].result["action"] == "offers.default"
    assert "permanent" in run.steps[0].error
    assert len(_fake(app, "backup").calls) == 1


@pytest.mark.parametrize(
    ("ordered", "a2_waits_for_a1"),
    [pytest.param(True, True, id="ordered"), pytest.param(False, False, id="unordered")],
)
async def test_per_contact_ordering(
    start_app: StartApp, ordered: bool, a2_waits_for_a1: bool
) -> None:
    connectors = {
        "fake": {
            "kind": "fake",
            "ordered": ordered,
            "base_backoff_s": 0.3,
            "max_backoff_s": 0.3,
            "options": {"fail_times": 1},
        }
    }
    dispatch = {"poll_interval_s": 0.05, "base_backoff_s": 0.3}
    app = await start_app(connectors=connectors, triggers={"ping": _ping()}, dispatch=dispatch)
    await app.dispatcher.stop(grace_s=0)  # queue everything first, then deliver in one go
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        a1 = await sb.campaigns.trigger("ping", email="a@example.com")
        a2 = await sb.campaigns.trigger("ping", email="a@example.com")
        b1 = await sb.campaigns.trigger("ping", email="b@example.com")
        app.dispatcher.start()
        ended = [await _wait_end(sb, r.id) for r in (a1, a2, b1)]
    assert [r.status for r in ended] == [OK, OK, OK]
    order = [ctx.run_id for _, _, ctx in _fake(app).calls]
    assert order[0] == a1.id  # the first call, and the one that fails
    a1_success = len(order) - 1 - order[::-1].index(a1.id)
    assert order.index(b1.id) < a1_success  # another contact is not held back
    assert (order.index(a2.id) > a1_success) is a2_waits_for_a1


async def test_list_connectors_shows_the_circuit(start_app: StartApp) -> None:
    connectors = {
        "fake": {
            "kind": "fake",
            "breaker_failures": 1,
            "breaker_cooldown_s": 60,
            "options": {"fail_times": 1},
        }
    }
    app = await start_app(connectors=connectors, triggers={"ping": _ping()})
    breaker = app.dispatcher.guards["fake"].breaker
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        before = {c.name: c.circuit for c in await sb.connectors.list()}
        await sb.campaigns.trigger("ping", email="circ@example.com")
        await _wait_for(lambda: breaker.state == "open")
        after = {c.name: c.circuit for c in await sb.connectors.list()}
    assert before == {"fake": "closed"}
    assert after == {"fake": "open"}


async def test_rate_limit_holds_steps_beyond_the_burst(start_app: StartApp) -> None:
    connectors = {"fake": {"kind": "fake", "rate_per_s": 0.2, "rate_burst": 1}}
    app = await start_app(connectors=connectors, triggers={"ping": _ping()})
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        first = await sb.campaigns.trigger("ping", email="r1@example.com", wait=True)
        second = await sb.campaigns.trigger("ping", email="r2@example.com")
        seen = await sb.campaigns.get_run(second.id)
    assert first.status == OK
    # The one token went to the first step; the next one is five seconds away.
    assert seen.steps[0].status == campaigns_pb2.STEP_STATUS_PENDING
    assert len(_fake(app).calls) == 1
