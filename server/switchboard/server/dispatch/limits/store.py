"""Limits shared through the store's database: every worker on one database sees them.

The state lives in the store's `connector_state` table (collection `switchboard.limits`):
one row per connector (bucket, breaker, quota) and one per process holding slots. A claim
reads the budgets, claims the outbox rows and takes their tickets in the claim's own write
transaction, so sharing adds a few statements to a transaction the dispatcher runs anyway
(no extra commit) and two workers can never both take the last token or slot. What
happens per call (a slot freed, a breaker report) is queued and written in one small
transaction per event-loop turn, which the store's group commit joins to the step's
own outcome write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from switchboard.server.dispatch.limits import rules
from switchboard.server.dispatch.limits.base import (
    Budgets,
    Claimed,
    ClaimFn,
    Lane,
    LaneOf,
    LimitSpec,
    Ticket,
    lanes_by_connector,
    pair,
)
from switchboard.server.dispatch.limits.rules import SharedState, Slot
from switchboard.server.store.base import Store, WriteTx

log = logging.getLogger(__name__)
COLLECTION = "switchboard.limits"
_STATE = "state"
_SLOT = "slot:"
_MAX_HOLDERS = 1000


@dataclass(slots=True)
class _Pending:
    name: str
    ok: bool | None  # None: only a slot to free
    probe: bool
    release: bool


class StoreLimits:
    """`Limits` in the store's database."""

    def __init__(
        self,
        store: Store,
        specs: Mapping[str, LimitSpec],
        holder: str,
        lease_s: float,
        clock: Callable[[], float] = time.time,
        lookahead_s: float = 0.0,
    ) -> None:
        self._store = store
        self._specs = dict(specs)
        self._holder = holder
        self._lease_s = lease_s
        self._clock = clock
        self._lookahead_s = lookahead_s
        self._pending: list[_Pending] = []
        self._flushing: asyncio.Task[None] | None = None
        self._open_until: dict[str, float] = {}

    # -- reading and writing one connector's state -----------------------------------------

    def _load(self, tx: WriteTx, name: str) -> SharedState:
        state = SharedState.from_json(tx.state_get(name, COLLECTION, _STATE))
        for row in tx.state_scan(name, COLLECTION, _SLOT, _MAX_HOLDERS):
            state.slots[str(row["holder"])] = Slot(int(row["count"]), float(row["expires"]))
        return state

    def _save(self, tx: WriteTx, name: str, state: SharedState, before: set[str]) -> None:
        tx.state_put(name, COLLECTION, _STATE, state.to_json())
        mine = state.slots.get(self._holder)
        if mine is not None:  # other holders' rows change only by expiring (deleted below)
            value = {"holder": self._holder, "count": mine.count, "expires": mine.expires}
            tx.state_put(name, COLLECTION, _SLOT + self._holder, value)
        for gone in before - state.slots.keys():
            tx.state_delete(name, COLLECTION, _SLOT + gone)
        self._open_until[name] = state.open_until

    def _apply_pending(self, tx: WriteTx, now: float, pending: list[_Pending]) -> None:
        by_name: dict[str, list[_Pending]] = {}
        for p in pending:
            by_name.setdefault(p.name, []).append(p)
        for name, ops in by_name.items():
            spec = self._specs[name]
            state = self._load(tx, name)
            before = set(state.slots)
            for op in ops:
                if op.release:
                    rules.release(state, self._holder)
                if op.ok is not None:
                    changed = rules.report(state, spec, op.ok, op.probe, now)
                    if changed:
                        _log_circuit(name, changed, spec, op.ok, op.probe)
            self._save(tx, name, state, before)

    # -- the contract ------------------------------------------------------------------

    async def budgets(self) -> Budgets:
        """Budgets from the shared state (a write: expired slots and refills are saved)."""

        def run(tx: WriteTx) -> Budgets:
            now = self._clock()
            budgets, states = self._budgets_tx(tx, now)
            for name, (state, before) in states.items():
                self._save_if_changed(tx, name, state, before, now)
            return budgets

        return await self._store.write(run)

    def _save_if_changed(
        self, tx: WriteTx, name: str, state: SharedState, before: set[str], now: float
    ) -> None:
        # The bucket's refill needs no write (it follows from the saved time); a renewed
        # lease or an expired holder does.
        renewed = rules.renew(state, self._holder, now, self._lease_s)
        if renewed or state.slots.keys() != before:
            self._save(tx, name, state, before)

    def _budgets_tx(
        self, tx: WriteTx, now: float
    ) -> tuple[Budgets, dict[str, tuple[SharedState, set[str]]]]:
        counts: dict[str, int] = {}
        wake: float | None = None
        states: dict[str, tuple[SharedState, set[str]]] = {}
        for name, spec in self._specs.items():
            state = self._load(tx, name)
            before = set(state.slots)
            counts[name], hint = rules.budget(state, spec, now, self._lookahead_s)
            self._open_until[name] = state.open_until
            if hint is not None:
                wake = hint if wake is None else min(wake, hint)
            states[name] = (state, before)
        return Budgets(counts, wake), states

    async def take(self, asks: Mapping[str, Sequence[Lane]]) -> dict[str, list[Ticket]]:
        """Tickets in one write transaction."""

        def run(tx: WriteTx) -> dict[str, list[Ticket]]:
            now = self._clock()
            out: dict[str, list[Ticket]] = {}
            for name, lanes in asks.items():
                state = self._load(tx, name)
                before = set(state.slots)
                out[name] = self._take(state, name, lanes, now)
                self._save(tx, name, state, before)
            return out

        return await self._store.write(run)

    def _take(
        self, state: SharedState, name: str, lanes: Sequence[Lane], now: float
    ) -> list[Ticket]:
        spec = self._specs[name]
        return [
            Ticket(t.ok, t.delay_s, t.probe, t.reason, t.retry_in_s, source=self)
            for t in rules.take(state, spec, self._holder, lanes, now, self._lease_s)
        ]

    async def claim(self, store: Store, claim: ClaimFn, lane_of: LaneOf) -> Claimed:
        """Queued reports, budgets, the claim and its tickets: one write transaction."""
        pending, self._pending = self._pending, []

        def run(tx: WriteTx) -> Claimed:
            now = self._clock()
            if pending:
                self._apply_pending(tx, now, pending)
            budgets, states = self._budgets_tx(tx, now)
            items = claim(tx, budgets.counts)
            asks = lanes_by_connector(items, lane_of, budgets.counts)
            tickets: dict[str, list[Ticket]] = {}
            for name, (state, before) in states.items():
                lanes = asks.get(name, [])
                if lanes:
                    tickets[name] = self._take(state, name, lanes, now)
                    self._save(tx, name, state, before)
                else:
                    tickets[name] = []
                    self._save_if_changed(tx, name, state, before, now)
            return Claimed(pair(items, tickets), budgets.wake_in_s)

        try:
            return await store.write(run)
        except BaseException:
            self._pending[:0] = pending  # not written: keep them for the next transaction
            raise

    async def acquire(self, name: str, lane: Lane) -> Ticket:
        """One ticket, in a write transaction of its own."""
        if name not in self._specs:
            return Ticket(True, source=self)
        return (await self.take({name: [lane]}))[name][0]

    def admit(self, name: str, ticket: Ticket | None) -> bool:
        """Refuse only when the circuit is known open and this call is not its probe."""
        if ticket is not None and ticket.probe:
            return True
        return self.circuit(name) != "open"

    def report(self, name: str, ok: bool, ticket: Ticket | None) -> None:
        """Queued for the next write."""
        if name in self._specs:
            probe = ticket is not None and ticket.probe
            self._queue(_Pending(name, ok, probe, release=False))

    def release(self, name: str, ticket: Ticket) -> None:
        """Queued for the next write."""
        if name in self._specs and ticket.ok:
            self._queue(_Pending(name, None, False, release=True))

    def circuit(self, name: str) -> str:
        """From the state this process saw last."""
        until = self._open_until.get(name, 0.0)
        if until == 0.0:
            return "closed"
        return "open" if self._clock() < until else "half_open"

    def _queue(self, op: _Pending) -> None:
        self._pending.append(op)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def flush(self) -> None:
        """Write the queued reports and releases now."""
        await self._flush()

    async def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            await self._store.write(lambda tx: self._apply_pending(tx, self._clock(), pending))
        except Exception:
            # Slots are leased and expire; a lost breaker report only delays a transition.
            log.warning("could not save connector limits; the next claim retries", exc_info=True)
            self._pending[:0] = pending

    async def aclose(self) -> None:
        """Write what is queued."""
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing
        await self._flush()


def _log_circuit(name: str, state: str, spec: LimitSpec, ok: bool, probe: bool) -> None:
    if state == "closed":
        why = "a call succeeded"
    elif probe:
        why = f"the probe call failed; next probe in {spec.breaker_cooldown_s:g}s"
    else:
        why = (
            f"{spec.breaker_failures} consecutive failures; "
            f"next probe in {spec.breaker_cooldown_s:g}s"
        )
    log.warning(
        "circuit for connector %s is %s: %s",
        name,
        state,
        why,
        extra={"fields": {"connector": name, "circuit": state}},
    )
