"""The writer's component histograms report quantiles within one bucket of the truth."""

from __future__ import annotations

import random

from switchboard.server.store.sqlite.writer_stats import BOUNDS, Histogram, WriterStats


def _exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-len(ordered) * int(q * 100) // 100) - 1)]


def test_quantiles_are_at_or_just_above_the_exact_ones() -> None:
    rng = random.Random(3)
    values = [rng.lognormvariate(-5, 1.5) for _ in range(5000)]
    h = Histogram()
    for v in values:
        h.add(v)
    width = BOUNDS[1] / BOUNDS[0]
    for q in (0.5, 0.99):
        exact = _exact(values, q)
        assert exact <= h.quantile(q) <= exact * width
    assert h.max_s == max(values)


def test_an_empty_histogram_reports_zero_and_take_skips_idle_kinds() -> None:
    assert Histogram().quantile(0.99) == 0.0
    stats = WriterStats()
    stats.job("call", 0.001, 0.002, 0.003, 0.004, 0.011)
    taken = stats.take()
    assert set(taken) == {"call"}
    assert taken["call"]["commit"]["max_ms"] == 4.0
