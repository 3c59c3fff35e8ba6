"""Backfill a connector: every stored contact sent to it, queued at a pace, with progress.

The runs are queued a page at a time, keeping at most `window` of this call's runs under
way, so a million contacts never sit in the outbox at once and the tool's limits, not the
queue, set the pace. Progress is read back from the runs themselves. The segment hook: a
backfill of a segment's members only needs another source of contacts in `queue_page`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from functools import partial

from switchboard.server.common.timeutil import now_us, to_us
from switchboard.server.config.sync import SyncSettings
from switchboard.server.connectors.base import Connector
from switchboard.server.dispatch.worker import Dispatcher
from switchboard.server.errors import FailedPrecondition, NotFound
from switchboard.server.rules.validation import MAX_KEY_NAME, Violations, check_length
from switchboard.server.runs.backfill import (
    BACKFILL_EVENT,
    Position,
    backfill_step,
    destination_for,
    position,
    queue_page,
)
from switchboard.server.runs.outcome import TERMINAL_RUN
from switchboard.server.store.base import ReadTx, Store
from switchboard.v1 import campaigns_pb2, connectors_pb2

StepStatus = campaigns_pb2.StepStatus
_CHUNK = 100  # runs read per poll transaction


class BackfillService:
    """Runs a connector's backfill for one streaming call."""

    def __init__(
        self,
        store: Store,
        connectors: Mapping[str, Connector],
        sync: SyncSettings,
        dispatcher: Dispatcher,
        page_size: int = 200,
        window: int = 1000,
        poll_s: float = 0.2,
    ) -> None:
        self._store = store
        self._connectors = connectors
        self._sync = sync
        self._dispatcher = dispatcher
        self._page_size = page_size
        self._window = window
        self._poll_s = poll_s

    async def run(
        self, req: connectors_pb2.BackfillConnectorRequest
    ) -> AsyncIterator[connectors_pb2.BackfillConnectorResponse]:
        """Queue the contacts not yet queued, and report until their runs have ended."""
        v = Violations()
        if not req.connector:
            v.add("connector", "is required")
        check_length(v, "connector", req.connector, MAX_KEY_NAME)
        v.raise_if_any()
        connector = self._connectors.get(req.connector)
        if connector is None:
            known = ", ".join(sorted(self._connectors))
            raise NotFound(f"no connector named {req.connector!r} (configured: {known})")
        dest = destination_for(self._sync, req.connector)
        if dest.action not in connector.actions:
            raise FailedPrecondition(
                f"connector {req.connector!r} has no action {dest.action!r} to receive "
                "contacts; make it a sync destination with its contact action (sync.destinations)"
            )
        step = backfill_step(dest)
        since = to_us(req.since) if req.HasField("since") else 0
        stored = await self._store.read(lambda tx: position(tx, req.connector))
        restart = req.restart or (stored is not None and stored.done and stored.since_us != since)
        if stored and not restart and stored.since_us != since and not stored.done:
            raise FailedPrecondition(
                f"a backfill of {req.connector!r} for contacts changed since "
                f"{stored.since_us} (us) stopped part way: continue it with the same since, "
                "or pass restart"
            )
        start = stored if stored and not restart else Position(since, None, 0, False)
        progress = connectors_pb2.BackfillConnectorResponse(connector=req.connector)
        under_way: dict[str, None] = {}  # an ordered set: oldest first
        while True:
            runs: list[str] = []
            if not start.done and len(under_way) < self._window:
                page = partial(
                    queue_page, step=step, since_us=start.since_us, limit=self._page_size,
                    now=now_us(), restart=restart,
                )
                start, runs = await self._store.write(page, bulk=True)
                restart = False
                under_way.update(dict.fromkeys(runs))
                if runs:
                    self._dispatcher.started(BACKFILL_EVENT)
            ended = await self._ended(under_way)
            for run in ended:
                del under_way[run.id]
                _count(progress, run)
            progress.queued = start.queued
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
