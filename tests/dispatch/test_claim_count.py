"""How many claims (each a write transaction under the store's write lock) delivery takes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.v1 import campaigns_pb2

StartApp = Callable[..., Awaitable[App]]


async def test_a_claim_that_took_everything_due_is_not_followed_by_an_empty_one(
    start_app: StartApp,
) -> None:
    # Sync off: a trigger's contact write starts no contact-sync run of its own, so each
    # trigger is one run of three steps, each due once the one before was delivered.
    app = await start_app(sync={"destinations": {}}, dispatch={"poll_interval_s": 5.0})
    limits = app.dispatcher.limits
    claims = 0
    claim = limits.claim

    async def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal claims
        claims += 1
        return await claim(*args, **kwargs)

    limits.claim = counted  # type: ignore[method-assign]
    runs = 10
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as sb:
        for i in range(runs):
            run = await sb.campaigns.trigger(
                "newsletter.signup",
                email=f"claims{i}@example.com",
                contact={"consent": True, "consents": {"personalization": True}},
                wait=True,
            )
            assert run.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
            assert len(run.steps) == 3
    # One claim per step, woken by the commit that queued it (the trigger, then each
    # delivery), and one after the last delivery that finds nothing: 4 a run. Claiming
    # again at once after every claim that took something made it 7 a run.
    assert claims <= 4 * runs + 2, claims
