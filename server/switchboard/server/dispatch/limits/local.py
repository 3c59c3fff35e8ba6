"""Limits held in this process only: each worker has its own (the behaviour with one worker).

The breaker, bucket and slot count are the connector guards' own (`dispatch/guard.py`);
the daily quota is counted here. Also the fallback while a shared backend is unreachable.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from switchboard.server.dispatch.guard import ConnectorGuard
from switchboard.server.dispatch.limits.base import (
    Budgets,
    Claimed,
    ClaimFn,
    Lane,
    LaneOf,
    LimitSpec,
    Ticket,
    claim_in_steps,
)
from switchboard.server.dispatch.limits.rules import DAY_S
from switchboard.server.store.base import Store


class LocalLimits:
    """`Limits` in process memory."""

    def __init__(
        self,
        guards: Mapping[str, ConnectorGuard],
        specs: Mapping[str, LimitSpec] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._guards = guards
        self._specs = specs or {}
        self._wall_clock = wall_clock
        self._used: dict[str, tuple[int, int]] = {}  # name -> (UTC day, calls)

    async def budgets(self) -> Budgets:
        """Each guard's budget, capped by the interactive lane's quota."""
        counts = {
            name: min(g.budget(), self._quota_left(name, "interactive"))
            for name, g in self._guards.items()
        }
        return Budgets(counts)

    async def take(self, asks: Mapping[str, Sequence[Lane]]) -> dict[str, list[Ticket]]:
        """A slot, quota and rate token per call; the breaker is asked later, by `admit`."""
        return {
            name: [self._take_one(name, lane) for lane in lanes] for name, lanes in asks.items()
        }

    async def claim(self, store: Store, claim: ClaimFn, lane_of: LaneOf) -> Claimed:
        """Budget, claim, take (nothing to share, so no single transaction is needed)."""
        return await claim_in_steps(self, store, claim, lane_of)

    async def acquire(self, name: str, lane: Lane) -> Ticket:
        """One call now: refused when the circuit is open or every slot is taken."""
        guard = self._guards.get(name)
        if guard is None:
            return Ticket(True, source=self)
        if guard.breaker.capacity() == 0:
            return Ticket(
                False, reason="circuit open", retry_in_s=guard.breaker.reopens_in_s(), source=self
            )
        if guard.in_flight >= guard.max_concurrency:
            return Ticket(False, reason="no free concurrency slot", source=self)
        return self._take_one(name, lane)

    def _take_one(self, name: str, lane: Lane) -> Ticket:
        guard = self._guards[name]
        if self._quota_left(name, lane) <= 0:
            now = self._wall_clock()
            retry = (int(now // DAY_S) + 1) * DAY_S - now
            return Ticket(
                False, reason=f"daily quota used up ({lane} lane)", retry_in_s=retry, source=self
            )
        spec = self._specs.get(name)
        if spec is not None and spec.daily_quota is not None:
            day, used = self._used.get(name, (0, 0))
            self._used[name] = (day, used + 1)
        return Ticket(True, delay_s=guard.bucket.take(), source=self)

    def _quota_left(self, name: str, lane: Lane) -> int:
        spec = self._specs.get(name)
        if spec is None or spec.daily_quota is None:
            return 1_000_000
        today = int(self._wall_clock() // DAY_S)
        day, used = self._used.get(name, (today, 0))
        if day != today:
            used = 0
        self._used[name] = (today, used)
        reserve = spec.interactive_reserve if lane == "bulk" else 0
        return max(0, spec.daily_quota - reserve - used)

    def admit(self, name: str, ticket: Ticket | None) -> bool:
        """The breaker's own `allow` (takes the half-open probe)."""
        guard = self._guards.get(name)
        return guard is None or guard.breaker.allow()

    def report(self, name: str, ok: bool, ticket: Ticket | None) -> None:
        """Success or transient failure, to this process's breaker."""
        guard = self._guards.get(name)
        if guard is not None:
            if ok:
                guard.breaker.success()
            else:
                guard.breaker.failure()

    def release(self, name: str, ticket: Ticket) -> None:
        """Nothing to do: the caller keeps the guard's `in_flight`, which is the slot count."""

    def circuit(self, name: str) -> str:
        """This process's breaker state."""
        guard = self._guards.get(name)
        return "closed" if guard is None else guard.breaker.state

    async def aclose(self) -> None:
        """Nothing to close."""
