"""Retention: idempotency keys are purged once older than the configured window.

The window is at least 24 hours (enforced by the settings), so a caller retrying within a
day always gets the first answer back. Purging runs in small batches so that it never
holds the single writer for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from switchboard.server.common.timeutil import now_us
from switchboard.server.store.base import Store

log = logging.getLogger(__name__)
_BATCH = 1000


async def purge_idempotency(store: Store, retention_s: float) -> int:
    """Delete every key older than `retention_s`; return how many were deleted."""
    cutoff = now_us() - int(retention_s * 1_000_000)
    total = 0
    while True:
        deleted = await store.write(lambda tx: tx.purge_idempotency(cutoff, _BATCH), bulk=True)
        total += deleted
        if deleted < _BATCH:
            return total


class RetentionTask:
    """Runs `purge_idempotency` every `interval_s` in the background."""

    def __init__(self, store: Store, retention_s: float, interval_s: float) -> None:
        self._store = store
        self._retention_s = retention_s
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin purging (first pass at once)."""
        self._task = asyncio.create_task(self._run(), name="retention")

    async def stop(self) -> None:
        """Stop purging; a pass in progress is abandoned (its batches are each atomic)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                purged = await purge_idempotency(self._store, self._retention_s)
                if purged:
                    log.info("purged %d expired idempotency keys", purged)
            except Exception:
                log.exception("idempotency purge failed; will try again")
            await asyncio.sleep(self._interval_s)
