"""The fake adapter: echo, scripted outcomes, scripted failures, health and call recording."""

from __future__ import annotations

from typing import Any

import pytest

from switchboard.server.connectors.base import Connector, InvokeContext
from switchboard.server.connectors.fake import RECORDED_CALLS, FakeConnector
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError


def make(**options: Any) -> FakeConnector:
    return FakeConnector("fake", options, InMemoryState())


def ctx(attempt: int = 1) -> InvokeContext:
    return InvokeContext(idempotency_key="k1", attempt=attempt)


def test_is_a_connector() -> None:
    fake = make(actions=["contacts.upsert"])

    assert isinstance(fake, Connector)
    assert fake.kind == "fake"
    assert fake.actions == frozenset({"echo", "contacts.upsert"})


async def test_default_answer_echoes_params() -> None:
    fake = make()

    result = await fake.invoke("echo", {"params": {"list": "news"}}, ctx(attempt=3))

    assert result == {"ok": True, "action": "echo", "attempt": 3, "echo": {"list": "news"}}
    assert (await fake.invoke("echo", {}, ctx()))["echo"] == {}


async def test_scripted_outcomes_play_in_order_then_fall_back() -> None:
    fake = make(actions=["offers.show"])
    boom = RetryableConnectorError("down")
    fake.script("offers.show", boom, {"offer": "X"})

    with pytest.raises(RetryableConnectorError) as info:
        await fake.invoke("offers.show", {}, ctx())
    second = await fake.invoke("offers.show", {}, ctx(attempt=2))
    third = await fake.invoke("offers.show", {}, ctx(attempt=3))
    echoed = await fake.invoke("echo", {}, ctx())

    assert info.value is boom
    assert second == {"offer": "X"}
    assert third["ok"] is True
    assert third["attempt"] == 3
    assert echoed["action"] == "echo"


def test_scripting_an_unknown_action_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"has no action 'nope'"):
        make().script("nope", {})


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        pytest.param("retryable", RetryableConnectorError, id="retryable"),
        pytest.param("permanent", PermanentConnectorError, id="permanent"),
    ],
)
async def test_first_invocations_fail(mode: str, error: type[Exception]) -> None:
    fake = make(fail_times=2, fail_mode=mode)

    for _ in range(2):
        with pytest.raises(error, match=r"scripted failure"):
            await fake.invoke("echo", {}, ctx())

    assert (await fake.invoke("echo", {}, ctx()))["ok"] is True


async def test_every_call_is_recorded_including_failures() -> None:
    fake = make(fail_times=1)
    first, second = ctx(attempt=1), ctx(attempt=2)
    payload = {"params": {"n": 1}}

    with pytest.raises(RetryableConnectorError):
        await fake.invoke("echo", payload, first)
    with pytest.raises(PermanentConnectorError, match=r"has no action 'other'"):
        await fake.invoke("other", {}, second)
    payload["params"]["n"] = 2

    assert list(fake.calls) == [("echo", {"params": {"n": 1}}, first), ("other", {}, second)]


async def test_latency_option_delays_the_answer() -> None:
    fake = make(latency_s=0.01)

    assert (await fake.invoke("echo", {}, ctx()))["ok"] is True


async def test_health_follows_the_option_and_set_healthy() -> None:
    fake = make(healthy=False)

    with pytest.raises(RetryableConnectorError, match=r"unhealthy"):
        await fake.health()
    fake.set_healthy(True)
    await fake.health()
    await fake.aclose()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"actions": "echo"}, "option 'actions'", id="actions-not-list"),
        pytest.param({"actions": [""]}, "option 'actions'", id="empty-action"),
        pytest.param({"fail_times": -1}, "option 'fail_times'", id="negative-fail-times"),
        pytest.param({"fail_times": 1.5}, "option 'fail_times'", id="float-fail-times"),
        pytest.param({"fail_mode": "sometimes"}, "option 'fail_mode'", id="bad-fail-mode"),
        pytest.param({"latency_s": -0.1}, "option 'latency_s'", id="negative-latency"),
        pytest.param({"latency_s": True}, "option 'latency_s'", id="bool-latency"),
        pytest.param({"healthy": "yes"}, "option 'healthy'", id="healthy-not-bool"),
        pytest.param({"colour": "red"}, "option.*'colour'", id="unknown-option"),
    ],
)
def test_bad_options_are_rejected(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=rf"connector 'fake': {message}"):
        make(**options)


async def test_only_the_most_recent_calls_are_kept() -> None:
    fake = make()
    for n in range(RECORDED_CALLS + 5):
        await fake.invoke("echo", {"params": {"n": n}}, ctx())
    assert len(fake.calls) == RECORDED_CALLS  # a fake under load does not grow without end
    assert fake.calls[0][1]["params"]["n"] == 5
    assert fake.calls[-1][1]["params"]["n"] == RECORDED_CALLS + 4
