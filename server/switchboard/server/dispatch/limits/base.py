"""The contract every limits backend keeps, and the values passed through it.

A backend answers four questions per connector, atomically across every process that
shares it: how many calls may start now (free concurrency slots, rate tokens, the circuit
breaker, the daily quota); take that many (each call learns how long to wait for its rate
token); a call ended (release its slot, tell the breaker how it went); and what the circuit
is. Calls are taken per claim of the dispatcher, for every connector at once, so that a
shared backend costs one round trip (or one transaction) per claim, not one per call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from switchboard.server.store.base import OutboxItem, Store, WriteTx

Lane = Literal["interactive", "bulk"]
"""Interactive calls (triggers, InvokeConnector) come before bulk syncs in the daily quota."""

ClaimFn = Callable[[WriteTx, Mapping[str, int]], list[OutboxItem]]
"""Claims due outbox rows within per-connector budgets, inside a write transaction."""

LaneOf = Callable[[OutboxItem], Lane]


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """One connector's configured limits."""

    rate_per_s: float | None
    burst: int
    max_concurrency: int
    breaker_failures: int
    breaker_cooldown_s: float
    daily_quota: int | None = None
    interactive_share: float = 0.2

    @property
    def interactive_reserve(self) -> int:
        """Calls of the daily quota that bulk calls may never use (rounded up)."""
        if self.daily_quota is None:
            return 0
        share = self.daily_quota * self.interactive_share
        whole = int(share)
        return whole + (share > whole)


@dataclass(frozen=True, slots=True)
class Ticket:
    """Permission for one call, or why it must wait.

    `ok`: the call holds a concurrency slot (and counted against the quota) and may start
    after `delay_s` (its rate token); `probe`: it is the half-open circuit's one probe.
    Refused (`ok` False): `reason` says why and `retry_in_s` when to look again.
    """

    ok: bool
    delay_s: float = 0.0
    probe: bool = False
    reason: str = ""
    retry_in_s: float = 0.0
    source: object = field(default=None, compare=False)  # the backend that issued it


@dataclass(frozen=True, slots=True)
class Budgets:
    """How many calls each connector may start now, and when a token frees up next."""

    counts: dict[str, int]
    wake_in_s: float | None = None


@dataclass(slots=True)
class Claimed:
    """What one claim took: each item with its ticket, and a hint for the next claim."""

    items: list[tuple[OutboxItem, Ticket | None]]
    wake_in_s: float | None = None


class Limits(Protocol):
    """Connector limits as seen by one process; shared or not depends on the backend."""

    async def budgets(self) -> Budgets:
        """How many calls each connector may start now (nothing is taken)."""
        ...

    async def take(self, asks: Mapping[str, Sequence[Lane]]) -> dict[str, list[Ticket]]:
        """One ticket per asked call, in order, atomically per connector."""
        ...

    async def claim(self, store: Store, claim: ClaimFn, lane_of: LaneOf) -> Claimed:
        """Budget, claim through `claim` and take tickets for what was claimed."""
        ...

    async def acquire(self, name: str, lane: Lane) -> Ticket:
        """One ticket for one call now (InvokeConnector)."""
        ...

    def admit(self, name: str, ticket: Ticket | None) -> bool:
        """Just before calling: may the call go (the circuit may have opened meanwhile)?"""
        ...

    def report(self, name: str, ok: bool, ticket: Ticket | None) -> None:
        """The connector answered (`ok`) or failed transiently: tell the breaker."""
        ...

    def release(self, name: str, ticket: Ticket) -> None:
        """The call holding `ticket` ended: free its concurrency slot."""
        ...

    def circuit(self, name: str) -> str:
        """closed, open or half_open, as last seen by this process."""
        ...

    async def aclose(self) -> None:
        """Send what is pending and close connections."""
        ...


async def claim_in_steps(limits: Limits, store: Store, claim: ClaimFn, lane_of: LaneOf) -> Claimed:
    """Budget, claim in a write transaction of its own, then take: for backends outside
    the store. Two processes may both see the last slot or token; `take` settles it
    atomically (a token then comes with a wait, a slot or quota refused with a ticket
    that says why)."""
    budgets = await limits.budgets()
    items = await store.write(lambda tx: claim(tx, budgets.counts))
    tickets = await limits.take(lanes_by_connector(items, lane_of, budgets.counts))
    return Claimed(pair(items, tickets), budgets.wake_in_s)


def lanes_by_connector(
    items: Sequence[OutboxItem], lane_of: LaneOf, known: Mapping[str, int]
) -> dict[str, list[Lane]]:
    """The lanes of the claimed items, per limited connector, in claim order."""
    asks: dict[str, list[Lane]] = {}
    for item in items:
        if item.connector in known:
            asks.setdefault(item.connector, []).append(lane_of(item))
    return asks


def pair(
    items: Sequence[OutboxItem], tickets: Mapping[str, Sequence[Ticket]]
) -> list[tuple[OutboxItem, Ticket | None]]:
    """Hand each item the next ticket of its connector (None: the connector is unlimited)."""
    taken = {name: iter(ts) for name, ts in tickets.items()}
    out: list[tuple[OutboxItem, Ticket | None]] = []
    for item in items:
        it = taken.get(item.connector)
        out.append((item, next(it) if it is not None else None))
    return out
