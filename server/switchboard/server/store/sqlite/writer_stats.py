"""Where a write's time goes: waiting for the writer, in the transaction, in the COMMIT.

Every job the `WriteBatcher` runs records four spans of its life, per kind: `call` (an
interactive write made while serving an RPC), `background` (an interactive write from
delivery or other background work: step results, claims) or `bulk`:

- `queue`: from `submit` until its batch starts (behind this process's earlier batches);
- `lock`: from the batch start until `BEGIN IMMEDIATE` returned (behind the other worker
  processes' write transactions: the `flock` hand-off and SQLite's own lock);
- `tx`: from then until the COMMIT starts (every job of the batch applied; for bulk jobs
  this is their SQL on the commit thread);
- `commit`: the COMMIT itself, with its fsync;
- `total`: from `submit` until the caller's future resolved (the above plus the event loop's
  delay in running the completion).

Each goes into a histogram of fixed, log-spaced buckets (a few integer increments per job:
cheap enough to be always on). `take()` returns each histogram's count, p50, p99 and max
since the last call and starts over; the store logs that every `writer_stats_s` seconds
when that setting is on, which is how the soak case reports per-window components.
"""

from __future__ import annotations

import bisect
from typing import Literal

Kind = Literal["call", "background", "bulk"]
KINDS: tuple[Kind, ...] = ("call", "background", "bulk")
COMPONENTS = ("queue", "lock", "tx", "commit", "total")
#: Upper bounds (seconds) of the buckets: 50 µs to ~20 s, 10 per decade.
BOUNDS: tuple[float, ...] = tuple(50e-6 * 10 ** (i / 10) for i in range(57))


class Histogram:
    """Counts in `BOUNDS` buckets, plus the exact maximum."""

    __slots__ = ("counts", "max_s", "n")

    def __init__(self) -> None:
        self.counts = [0] * (len(BOUNDS) + 1)
        self.n = 0
        self.max_s = 0.0

    def add(self, seconds: float) -> None:
        """Count one observation."""
        self.counts[bisect.bisect_left(BOUNDS, seconds)] += 1
        self.n += 1
        if seconds > self.max_s:
            self.max_s = seconds

    def quantile(self, q: float) -> float:
        """The upper bound of the bucket holding the `q` quantile (0 < q <= 1); 0 when empty.

        At most 26 % above the true value (the buckets' width), never below it, except in
        the last bucket, which reports the maximum.
        """
        if not self.n:
            return 0.0
        rank = max(1, round(q * self.n + 0.4999))
        seen = 0
        for index, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return min(BOUNDS[index], self.max_s) if index < len(BOUNDS) else self.max_s
        return self.max_s  # not reached: the counts add up to n


class WriterStats:
    """One `Histogram` per (kind, component); `take` drains them."""

    def __init__(self) -> None:
        self._hists = self._fresh()

    @staticmethod
    def _fresh() -> dict[str, dict[str, Histogram]]:
        return {kind: {c: Histogram() for c in COMPONENTS} for kind in KINDS}

    def job(
        self,
        kind: Kind,
        queue_s: float,
        lock_s: float,
        tx_s: float,
        commit_s: float,
        total_s: float,
    ) -> None:
        """Record one job's spans (seconds)."""
        hists = self._hists[kind]
        hists["queue"].add(queue_s)
        hists["lock"].add(lock_s)
        hists["tx"].add(tx_s)
        hists["commit"].add(commit_s)
        hists["total"].add(total_s)

    def take(self) -> dict[str, dict[str, dict[str, float]]]:
        """Per kind and component: jobs, p50, p99 and max (ms) since the last call."""
        hists, self._hists = self._hists, self._fresh()
        out: dict[str, dict[str, dict[str, float]]] = {}
        for kind, components in hists.items():
            if not components["total"].n:
                continue
            out[kind] = {
                name: {
                    "n": h.n,
                    "p50_ms": round(h.quantile(0.5) * 1e3, 2),
                    "p99_ms": round(h.quantile(0.99) * 1e3, 2),
                    "max_ms": round(h.max_s * 1e3, 2),
                }
                for name, h in components.items()
            }
        return out
