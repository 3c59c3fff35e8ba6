"""Backfill a connector: every stored contact (or the log's history since a time, see
`domain/backfill_history.py`) sent to it, queued at a pace, with progress.

The runs are queued a page at a time, keeping at most `window` of this call's runs under
way, so a million contacts never sit in the outbox at once and the tool's limits, not the
queue, set the pace. Progress is read back from the runs themselves. The segment hook: a
backfill of a segment's members only needs another source of contacts in `queue_page`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from switchboard.server.common.timeutil import now_us, to_us
from switchboard.server.config.sync import SyncSettings
from switchboard.server.connectors.base import Connector
from switchboard.server.dispatch.worker import Dispatcher
from switchboard.server.domain.backfill_history import (
    history_calls,
    resume_or_start,
    segment_members,
)
from switchboard.server.domain.segments import SegmentService
from switchboard.server.errors import FailedPrecondition, NotFound
from switchboard.server.rules.plan import PlanStep
from switchboard.server.rules.validation import MAX_KEY_NAME, Violations, check_length
from switchboard.server.runs.backfill import (
    BACKFILL_EVENT,
    Position,
    backfill_step,
    destination_for,
    position,
    queue_page,
)
from switchboard.server.runs.backfill_history import (
    HISTORY_EVENT,
    HistoryPosition,
    queue_history_page,
)
from switchboard.server.runs.outcome import TERMINAL_RUN
from switchboard.server.store.base import ReadTx, Store, WriteTx
from switchboard.server.store.event_log import acting_as, caller_actor
from switchboard.v1 import campaigns_pb2, connectors_pb2, events_pb2

StepStatus = campaigns_pb2.StepStatus
_CHUNK = 100  # runs read per poll transaction


@dataclass(frozen=True, slots=True)
class Pages:
    """One backfill's source of runs: `next()` queues a page and returns the moved position
    (`queued`, `done`) and the runs started; `event` is the runs' event name."""

    next: Callable[[], Awaitable[tuple[Position | HistoryPosition, list[str]]]]
    start: Position | HistoryPosition
    event: str


class BackfillService:
    """Runs a connector's backfill (current state or history) for one streaming call."""

    def __init__(
        self,
        store: Store,
        connectors: Mapping[str, Connector],
        sync: SyncSettings,
        dispatcher: Dispatcher,
        segments: SegmentService,
        page_size: int = 200,
        window: int = 1000,
        poll_s: float = 0.2,
    ) -> None:
        self._store = store
        self._connectors = connectors
        self._sync = sync
        self._dispatcher = dispatcher
        self._segments = segments
        self._page_size = page_size
        self._window = window
        self._poll_s = poll_s

    async def run(
        self, req: connectors_pb2.BackfillConnectorRequest
    ) -> AsyncIterator[connectors_pb2.BackfillConnectorResponse]:
        """Queue what is not yet queued, and report until its runs have ended."""
        v = Violations()
        if not req.connector:
            v.add("connector", "is required")
        check_length(v, "connector", req.connector, MAX_KEY_NAME)
        check_length(v, "segment", req.segment, MAX_KEY_NAME)
        if req.mode not in connectors_pb2.BackfillMode.values():
            v.add("mode", "is not a known BackfillMode")
        history = req.mode == connectors_pb2.BackfillMode.BACKFILL_MODE_HISTORY
        if req.segment and not history:
            v.add("segment", "is supported with mode BACKFILL_MODE_HISTORY only")
        v.raise_if_any()
        connector = self._connectors.get(req.connector)
        if connector is None:
            known = ", ".join(sorted(self._connectors))
            raise NotFound(f"no connector named {req.connector!r} (configured: {known})")
        actor = caller_actor()  # read here, in the call's task: the pages are written elsewhere
        step = backfill_step(destination_for(self._sync, req.connector))
        since = to_us(req.since) if req.HasField("since") else 0
        if history:
            pages = await self._history_pages(req, connector, step, since, actor)
        else:
            pages = await self._current_pages(req, connector, step, since, actor)
        progress = connectors_pb2.BackfillConnectorResponse(connector=req.connector)
        async for update in self._drive(pages, progress):
            yield update

    async def _current_pages(
        self,
        req: connectors_pb2.BackfillConnectorRequest,
        connector: Connector,
        step: PlanStep,
        since: int,
        actor: events_pb2.Actor,
    ) -> Pages:
        if step.action not in connector.actions:
            raise FailedPrecondition(
                f"connector {req.connector!r} has no action {step.action!r} to receive "
                "contacts; make it a sync destination with its contact action (sync.destinations)"
            )
        stored = await self._store.read(lambda tx: position(tx, req.connector))
        restart = req.restart or (stored is not None and stored.done and stored.since_us != since)
        if stored and not restart and stored.since_us != since and not stored.done:
            raise FailedPrecondition(
                f"a backfill of {req.connector!r} for contacts changed since "
                f"{stored.since_us} (us) stopped part way: continue it with the same since, "
                "or pass restart"
            )
        start = stored if stored and not restart else Position(since, None, 0, False)
        first = [restart]

        async def page() -> tuple[Position, list[str]]:
            def work(tx: WriteTx) -> tuple[Position, list[str]]:
                with acting_as(actor):
                    return queue_page(tx, step, start.since_us, self._page_size, now_us(),
                                      first[0])

            moved = await self._store.write(work, bulk=True)
            first[0] = False
            return moved

        return Pages(page, start, BACKFILL_EVENT)

    async def _history_pages(
        self,
        req: connectors_pb2.BackfillConnectorRequest,
        connector: Connector,
        step: PlanStep,
        since: int,
        actor: events_pb2.Actor,
    ) -> Pages:
        calls = history_calls(connector, step)
        members = await segment_members(self._segments, req.segment)
        start, fresh = await resume_or_start(
            self._store, calls, since, req.segment, members, req.restart
        )
        first = [fresh]

        async def page() -> tuple[HistoryPosition, list[str]]:
            def work(tx: WriteTx) -> tuple[HistoryPosition, list[str]]:
                with acting_as(actor):
                    return queue_history_page(
                        tx, calls, start, members, self._page_size, now_us(), first[0]
                    )

            moved = await self._store.write(work, bulk=True)
            first[0] = False
            return moved

        return Pages(page, start, HISTORY_EVENT)

    async def _drive(
        self, pages: Pages, progress: connectors_pb2.BackfillConnectorResponse
    ) -> AsyncIterator[connectors_pb2.BackfillConnectorResponse]:
        """Queue pages while fewer than `window` runs are under way; report as runs end."""
        start = pages.start
        under_way: dict[str, None] = {}  # an ordered set: oldest first
        while True:
            runs: list[str] = []
            if not start.done and len(under_way) < self._window:
                start, runs = await pages.next()
                under_way.update(dict.fromkeys(runs))
                if runs:
                    self._dispatcher.started(pages.event)
            ended = await self._ended(under_way)
            for run in ended:
                del under_way[run.id]
                _count(progress, run)
            progress.queued = start.queued
            if isinstance(start, HistoryPosition):
                progress.events_total = start.total
                progress.events_skipped = start.skipped
                progress.cursor = start.cursor
            progress.done = start.done and not under_way
            # After every page as well: a client that went away is noticed at the next
            # message, so a cancelled call queues at most one more page.
            if ended or runs or progress.done:
                yield progress
            if progress.done:
                return
            if start.done or len(under_way) >= self._window:
                await asyncio.sleep(self._poll_s)

    async def _ended(self, under_way: dict[str, None]) -> list[campaigns_pb2.Run]:
        """The runs of `under_way` (oldest first) that have ended.

        Runs mostly end in the order they were queued, so reading stops at the first chunk
        in which none has: a poll reads about what ended, not the whole window.
        """
        ids = list(under_way)
        ended: list[campaigns_pb2.Run] = []
        for at in range(0, len(ids), _CHUNK):
            chunk = ids[at : at + _CHUNK]

            def read(tx: ReadTx, chunk: list[str] = chunk) -> list[campaigns_pb2.Run]:
                runs = (tx.run(i) for i in chunk)
                return [r for r in runs if r is not None and r.status in TERMINAL_RUN]

            found = await self._store.read(read)
            if not found:
                break
            ended.extend(found)
        return ended


def _count(progress: connectors_pb2.BackfillConnectorResponse, run: campaigns_pb2.Run) -> None:
    progress.finished += 1
    status = run.steps[0].status if run.steps else StepStatus.STEP_STATUS_FAILED
    if status == StepStatus.STEP_STATUS_SKIPPED:
        progress.skipped += 1
    elif status == StepStatus.STEP_STATUS_FAILED:
        progress.failed += 1
    else:
        progress.succeeded += 1
