"""What grows in a running worker: tracemalloc snapshots diffed, logged (a diagnostic).

With `telemetry.heap_growth_s` set, each worker starts `tracemalloc` (one frame per
allocation), takes a baseline snapshot after the first interval (start-up and warm-up
allocations are in it), and every interval after that logs one WARNING line, `heap growth`,
with the traced heap's size and the source lines whose live allocations grew most since the
baseline. A leak is a line that keeps growing from line to line; a cache filling to its
bound grows early and then stops. Tracing slows the worker (every allocation is recorded):
turn it on to find a leak, not in production; each line's snapshot and diff also stall the
event loop (seconds, with a few hundred thousand live blocks).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tracemalloc

log = logging.getLogger(__name__)
TOP = 12


class HeapGrowth:
    """Logs the top growing allocation sites every `interval_s` until `aclose`."""

    def __init__(self, interval_s: float) -> None:
        self._interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._baseline: tracemalloc.Snapshot | None = None

    def start(self) -> None:
        """Start tracing and the logging task on the running loop."""
        if not tracemalloc.is_tracing():
            tracemalloc.start(1)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="heap-growth")

    async def aclose(self) -> None:
        """Stop the task and tracing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        tracemalloc.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            self.report()

    def report(self) -> list[tuple[str, int]]:
        """Log (and return) the top growing lines since the baseline; the first call takes it."""
        snapshot = tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        )
        if self._baseline is None:
            self._baseline = snapshot
            return []
        stats = snapshot.compare_to(self._baseline, "lineno")[:TOP]
        top = [(str(s.traceback[0]), s.size_diff) for s in stats]
        traced, _ = tracemalloc.get_traced_memory()
        log.warning(
            "heap growth: traced %.1f MB",
            traced / 2**20,
            extra={
                "fields": {
                    "pid": os.getpid(),
                    "traced_mb": round(traced / 2**20, 2),
                    "growth": [{"at": at, "kb": round(size / 1024, 1)} for at, size in top],
                }
            },
        )
        return top
