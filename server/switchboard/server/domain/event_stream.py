"""Reading the log as a stream: the backlog, then new events as they are committed.

Cursors are the log's sequence numbers. On SQLite one writer assigns them in commit order.
On PostgreSQL concurrent transactions take numbers before they commit, so a higher cursor
can become visible before a lower one; a stream that moved past the lower one would never
send it. `Horizon` therefore only lets a stream read up to the first missing number, and
gives up on a missing number (a transaction that rolled back) after `GAP_GRACE_S`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from switchboard.server.common.timeutil import now_us
from switchboard.server.store.base import ReadTx, Store
from switchboard.server.store.event_log import EventFilter, decode_rows
from switchboard.server.store.event_signal import SIGNAL
from switchboard.v1 import events_pb2

PAGE = 1000  # rows per read and at most per message
POLL_S = 0.25  # how often a tail looks for writes of other processes
GAP_GRACE_S = 5.0  # a transaction holding a missing cursor longer than this rolled back
_SEQ_SCAN = 5000
# A wake-up comes before the writer's COMMIT: look again shortly after, a few times.
_AFTER_WAKE_S = (0.002, 0.01, 0.05)


@dataclass(slots=True)
class Horizon:
    """How far the log is known to be complete (no cursor below it still to come)."""

    settled: int
    missing_since: dict[int, float] = field(default_factory=dict)

    def advance(self, seqs: list[int], now: float) -> None:
        """Move past the contiguous cursors in `seqs` (those after `settled`, in order)."""
        for seq in seqs:
            expected = self.settled + 1
            if seq != expected:
                first = self.missing_since.setdefault(expected, now)
                if now - first < GAP_GRACE_S:
                    return  # wait for the lower cursor's transaction to commit
                self.missing_since.pop(expected, None)
            self.settled = seq
        self.missing_since = {k: v for k, v in self.missing_since.items() if k > self.settled}


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """What one stream reads: after which cursor, which events, and when it ends."""

    after: int
    flt: EventFilter
    include_redacted: bool
    stop_at: int = 0  # end once the cursor reaches this (0: follow the log)
    settled: int = 0  # cursors up to this are known complete (older than the gap grace)


@dataclass(slots=True)
class _Page:
    response: events_pb2.StreamEventsResponse
    exhausted: bool  # nothing more is readable right now


def _read(tx: ReadTx, cursor: int, horizon: Horizon, plan: StreamPlan) -> _Page:
    if horizon.settled - cursor < PAGE:  # else the next page is known complete already
        horizon.advance(tx.event_seqs(horizon.settled, _SEQ_SCAN), time.monotonic())
    through = horizon.settled if not plan.stop_at else min(horizon.settled, plan.stop_at)
    resp = events_pb2.StreamEventsResponse(cursor=cursor)
    if through <= cursor:
        return _Page(resp, True)
    rows = tx.event_rows(cursor, PAGE, plan.flt, through)
    page = decode_rows(tx, rows, resp.events, keep_redacted=plan.include_redacted)
    full = len(rows) == PAGE
    resp.cursor = rows[-1].seq if full else through
    if not plan.include_redacted:
        resp.redacted_skipped = page.redacted
    return _Page(resp, not full and through == horizon.settled)


async def stream(store: Store, plan: StreamPlan) -> AsyncIterator[events_pb2.StreamEventsResponse]:
    """The events `plan` asks for, oldest first, in messages of at most `PAGE` events."""
    reader = _Reader(plan)
    with SIGNAL.listen() as appended:
        quick = 0
        while True:
            appended.clear()
            page = await store.read(reader.page)
            if page.response.cursor != reader.cursor:
                reader.cursor = page.response.cursor
                yield page.response
                quick = 0
            if reader.plan.stop_at and reader.cursor >= reader.plan.stop_at:
                return
            if page.exhausted and reader.past_until():
                # Events written from now on are after `until`: end once what exists now
                # (and any lower cursor still in flight) has been read.
                head = await store.read(lambda tx: tx.last_event_seq())
                if head <= reader.cursor:
                    return
                reader.stop_at(head)
                continue
            if not page.exhausted:
                continue
            if quick and quick <= len(_AFTER_WAKE_S):
                await asyncio.sleep(_AFTER_WAKE_S[quick - 1])
                quick += 1
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(appended.wait(), POLL_S)
            quick = 1 if appended.is_set() else 0


class _Reader:
    """One stream's position; `page` runs in the store's read transaction."""

    def __init__(self, plan: StreamPlan) -> None:
        self.plan = plan
        self.cursor = plan.after
        self.horizon = Horizon(settled=max(plan.after, plan.settled))

    def page(self, tx: ReadTx) -> _Page:
        return _read(tx, self.cursor, self.horizon, self.plan)

    def past_until(self) -> bool:
        until = self.plan.flt.until_us
        return bool(until) and not self.plan.stop_at and now_us() > until

    def stop_at(self, head: int) -> None:
        plan = self.plan
        self.plan = StreamPlan(plan.after, plan.flt, plan.include_redacted, head, plan.settled)
