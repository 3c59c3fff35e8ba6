from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import pytest

from switchboard.client import DeadlineExceededError, Switchboard

from .fakes import Backend


async def _stall(request: Any, context: grpc.aio.ServicerContext) -> None:
    await asyncio.Event().wait()  # never set: the deadline, or server stop, ends it


@pytest.mark.parametrize(
    ("client_timeout", "call_timeout"),
    [
        pytest.param(0.05, {}, id="client-default"),
        pytest.param(10.0, {"timeout": 0.05}, id="per-call"),
    ],
)
async def test_a_call_past_its_deadline_raises_deadline_exceeded(
    address: str, backend: Backend, client_timeout: float, call_timeout: dict[str, float]
) -> None:
    backend.before["GetContact"] = _stall

    async with Switchboard(address, timeout=client_timeout) as sb:
        with pytest.raises(DeadlineExceededError) as info:
            await sb.contacts.get(id="c_1", **call_timeout)

    assert info.value.code is grpc.StatusCode.DEADLINE_EXCEEDED


@pytest.fixture
def remaining(backend: Backend) -> list[float | None]:
    """The time left to each call as the server saw it (None: no deadline)."""
    seen: list[float | None] = []

    async def record(request: Any, context: grpc.aio.ServicerContext) -> None:
        seen.append(context.time_remaining())

    for method in ("GetContact", "WatchRun"):
        backend.before[method] = record
    return seen


async def _watch(sb: Switchboard, **kwargs: Any) -> None:
    async for _ in sb.campaigns.watch("r_1", **kwargs):
        pass


Call = Callable[..., Awaitable[Any]]


@pytest.mark.parametrize(
    ("call", "kwargs", "has_deadline"),
    [
        pytest.param(lambda sb, **kw: sb.contacts.get(id="c_1", **kw), {}, True, id="unary"),
        pytest.param(
            lambda sb, **kw: sb.contacts.get(id="c_1", **kw),
            {"timeout": None},
            False,
            id="unary-timeout-none",
        ),
        pytest.param(_watch, {}, False, id="stream"),
        pytest.param(_watch, {"timeout": 30.0}, True, id="stream-timeout"),
    ],
)
async def test_which_calls_carry_a_deadline(
    sb: Switchboard,
    remaining: list[float | None],
    call: Call,
    kwargs: dict[str, Any],
    has_deadline: bool,
) -> None:
    await call(sb, **kwargs)

    (left,) = remaining
    assert (left is not None) == has_deadline
