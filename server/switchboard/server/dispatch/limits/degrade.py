"""A shared backend that falls back to local limits while it cannot be reached.

A call never fails because Redis is away: each operation tries the shared backend and, on a
connection error or timeout, answers from this process's own limits instead. While Redis is
away, one operation every `retry_s` tries it again. Each change (lost, back) is one WARNING.
Tickets remember who issued them, so a call ends where it started.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

from switchboard.server.dispatch.limits.base import (
    Budgets,
    Claimed,
    ClaimFn,
    Lane,
    LaneOf,
    Ticket,
    claim_in_steps,
)
from switchboard.server.dispatch.limits.local import LocalLimits
from switchboard.server.dispatch.limits.redis import RedisLimits
from switchboard.server.store.base import Store

log = logging.getLogger(__name__)
T = TypeVar("T")


class Degrading:
    """`Limits` on Redis, or local ones while Redis is unreachable."""

    def __init__(
        self,
        shared: RedisLimits,
        local: LocalLimits,
        errors: tuple[type[BaseException], ...],
        retry_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._shared = shared
        self._local = local
        self._errors = errors
        self._retry_s = retry_s
        self._clock = clock
        self._down_at: float | None = None  # when the shared backend was last tried and failed
        shared.on_error = self.lost

    @property
    def degraded(self) -> bool:
        """True while limits are this process's own."""
        return self._down_at is not None

    async def _either(
        self, shared: Callable[[], Awaitable[T]], local: Callable[[], Awaitable[T]]
    ) -> T:
        if self._down_at is not None and self._clock() - self._down_at < self._retry_s:
            return await local()
        try:
            result = await shared()
        except self._errors as exc:
            self.lost(exc)
            return await local()
        self._back()
        return result

    def lost(self, exc: BaseException) -> None:
        """The shared backend failed: use local limits (one WARNING when this starts)."""
        if self._down_at is None:
            log.warning(
                "Redis is unreachable for connector limits (%s); each process uses its own "
                "limits until it is back",
                type(exc).__name__ if not str(exc) else exc,
                extra={"fields": {"limits": "local"}},
            )
        self._down_at = self._clock()

    def _back(self) -> None:
        if self._down_at is not None:
            self._down_at = None
            log.warning(
                "Redis is reachable again; connector limits are shared again",
                extra={"fields": {"limits": "redis"}},
            )

    async def budgets(self) -> Budgets:
        """Shared budgets, else local ones."""
        return await self._either(self._shared.budgets, self._local.budgets)

    async def take(self, asks: Mapping[str, Sequence[Lane]]) -> dict[str, list[Ticket]]:
        """Shared tickets, else local ones."""
        return await self._either(lambda: self._shared.take(asks), lambda: self._local.take(asks))

    async def claim(self, store: Store, claim: ClaimFn, lane_of: LaneOf) -> Claimed:
        """Peek, claim, take; each step on whichever backend answers."""
        return await claim_in_steps(self, store, claim, lane_of)

    async def acquire(self, name: str, lane: Lane) -> Ticket:
        """A shared ticket, else a local one."""
        return await self._either(
            lambda: self._shared.acquire(name, lane), lambda: self._local.acquire(name, lane)
        )

    def _owner(self, ticket: Ticket | None) -> RedisLimits | LocalLimits:
        if ticket is not None and ticket.source is self._shared:
            return self._shared
        if ticket is not None or self._down_at is not None:
            return self._local
        return self._shared

    def admit(self, name: str, ticket: Ticket | None) -> bool:
        """Asked of the backend that issued the ticket."""
        return self._owner(ticket).admit(name, ticket)

    def report(self, name: str, ok: bool, ticket: Ticket | None) -> None:
        """Told to the backend that issued the ticket."""
        self._owner(ticket).report(name, ok, ticket)

    def release(self, name: str, ticket: Ticket) -> None:
        """Freed where the ticket was issued."""
        self._owner(ticket).release(name, ticket)

    def circuit(self, name: str) -> str:
        """The circuit of whichever backend is in use."""
        return (self._local if self._down_at is not None else self._shared).circuit(name)

    async def aclose(self) -> None:
        """Close the Redis connections."""
        with contextlib.suppress(*self._errors):
            await self._shared.aclose()
