"""Event-loop lag and garbage-collection pauses, sampled in each worker.

A timer asks to wake every `interval_s`; how late it wakes is the loop's lag: the time a
callback that was ready had to wait because something held the loop (a long synchronous
step, a garbage collection, the GIL held by another thread). Lags go to the histogram
`switchboard.event_loop.lag`, collection pauses to `switchboard.gc.pause`; a lag of
`warn_ms` or more is logged (WARNING, at most one line a second, with the worst lag and
the longest collection since the last line), which is how the soak case reads them.

A gc callback runs on whichever thread allocated, at any point, even inside the metrics
SDK while it holds its locks (a Prometheus scrape aggregating a histogram): recording the
pause from there deadlocked that thread on a lock it held, and the event loop behind it
(seen as `make test` hanging at 61 %). So the callback only appends the pause to a deque;
the sampling task records the pauses on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import deque
from typing import Any

from opentelemetry import metrics

log = logging.getLogger(__name__)

LAG_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
)  # fmt: skip


class LoopLagMonitor:
    """Samples the running loop's lag and the process's gc pauses until `aclose`."""

    def __init__(
        self, meter: metrics.Meter, interval_s: float = 0.1, warn_ms: float = 100.0
    ) -> None:
        self._interval_s = interval_s
        self._warn_s = warn_ms / 1e3
        self._lag = meter.create_histogram(
            "switchboard.event_loop.lag",
            unit="s",
            description="How late a timer on the event loop fired.",
            explicit_bucket_boundaries_advisory=list(LAG_BUCKETS),
        )
        self._gc = meter.create_histogram(
            "switchboard.gc.pause",
            unit="s",
            description="Garbage collection pauses, by generation.",
            explicit_bucket_boundaries_advisory=list(LAG_BUCKETS),
        )
        self._task: asyncio.Task[None] | None = None
        self._gc_started = 0.0
        # (pause, generation) from the gc callback, recorded by the sampling task; bounded
        # so a loop that never runs again does not grow it.
        self._pauses: deque[tuple[float, int]] = deque(maxlen=4096)
        self.worst_lag_s = 0.0  # since the last warning line
        self.worst_gc_s = 0.0
        self._last_line = 0.0

    def start(self) -> None:
        """Start sampling on the running loop."""
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loop-lag")

    async def aclose(self) -> None:
        """Stop sampling."""
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked = loop.time() + self._interval_s
            await asyncio.sleep(self._interval_s)
            self.record(loop.time() - asked)
            self.flush_pauses()

    def flush_pauses(self) -> None:
        """Record the gc pauses seen since the last flush (on the event loop, not in gc)."""
        pauses = self._pauses
        while pauses:
            pause, generation = pauses.popleft()
            self._gc.record(pause, {"generation": generation})

    def record(self, lag_s: float) -> None:
        """Count one lag sample; log when it reaches the warning level."""
        lag_s = max(0.0, lag_s)
        self._lag.record(lag_s)
        self.worst_lag_s = max(self.worst_lag_s, lag_s)
        now = time.monotonic()
        if lag_s >= self._warn_s and now - self._last_line >= 1.0:
            log.warning(
                "event loop lag %.1f ms (longest gc pause %.1f ms)",
                self.worst_lag_s * 1e3,
                self.worst_gc_s * 1e3,
                extra={
                    "fields": {
                        "lag_ms": round(self.worst_lag_s * 1e3, 1),
                        "gc_ms": round(self.worst_gc_s * 1e3, 1),
                    }
                },
            )
            self._last_line = now
            self.worst_lag_s = self.worst_gc_s = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
            return
        pause = time.perf_counter() - self._gc_started
        self.worst_gc_s = max(self.worst_gc_s, pause)
        self._pauses.append((pause, int(info.get("generation", 0))))
