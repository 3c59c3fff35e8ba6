"""The soak case's pure parts: the call mix, percentiles, windows, flatness, the verdict."""

from __future__ import annotations

import random
from typing import Any

import pytest

from bench.soak import (
    MIX,
    errors_by_kind,
    flatness,
    percentile,
    pick,
    run_summary,
    verdict,
    window_medians,
    window_summary,
)


def test_the_mix_sums_to_one_and_pick_follows_it() -> None:
    assert sum(share for _, share in MIX) == pytest.approx(1.0)
    rng = random.Random(1)
    counts: dict[str, int] = {}
    for _ in range(20_000):
        method = pick(MIX, rng.random())
        counts[method] = counts.get(method, 0) + 1
    for method, share in MIX:
        assert counts[method] / 20_000 == pytest.approx(share, abs=0.01)
    assert pick(MIX, 0.0) == "GetContact"
    assert pick(MIX, 0.999999) == "ListRuns"


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        pytest.param(50, 50.0, id="median"),
        pytest.param(99, 99.0, id="p99"),
        pytest.param(100, 100.0, id="max"),
        pytest.param(1, 1.0, id="p1"),
    ],
)
def test_percentile_is_nearest_rank(p: float, expected: float) -> None:
    values = [float(v) for v in range(100, 0, -1)]  # unsorted on purpose
    assert percentile(values, p) == expected


def test_percentile_of_nothing_is_zero() -> None:
    assert percentile([], 99) == 0.0


def test_a_window_reports_milliseconds_per_method_and_overall() -> None:
    w = window_summary(
        3, {"GetContact": [0.001] * 99 + [0.5], "UpsertContact": [0.01]}, {"X": 2}, [0.002], 7
    )
    assert w["window"] == 3
    assert w["methods"]["GetContact"] == {"calls": 100, "p50_ms": 1.0, "p99_ms": 1.0}
    assert w["methods"]["UpsertContact"]["p99_ms"] == 10.0
    assert w["errors"] == {"X": 2}
    assert w["p99_ms"] == 10.0  # 101 calls: the 100th fastest
    assert w["gen_lag_max_ms"] == 2.0
    assert w["in_flight"] == 7


def test_flatness_ignores_the_first_third_and_fits_a_slope() -> None:
    # Grows 10 MB/min for the first 10 minutes, then flat at 100 MB.
    series = [(t * 60.0, min(100.0, 10.0 * t)) for t in range(0, 31)]
    fit = flatness(series)
    assert fit["spread"] == 0.0
    assert fit["slope_per_min"] == 0.0
    growing = [(t * 60.0, 50.0 + 2.0 * t) for t in range(0, 31)]
    fit = flatness(growing)
    assert fit["spread"] == pytest.approx(40.0)
    assert fit["slope_per_min"] == pytest.approx(2.0)


def _report(write_p50: float, write_p99: float, errors: int = 0) -> dict[str, object]:
    methods = run_summary({"UpsertContact": [write_p50 / 1e3] * 98 + [write_p99 / 1e3] * 2})
    return {
        "methods": methods,
        "windows": [{"p99_ms": 9999.0}, {"p99_ms": write_p99}],
        "errors": errors,
        "runs_not_final_after_drain": 0,
        "workers": [{"rss_mb_spread": 4.0}],
    }


def test_the_verdict_checks_each_target() -> None:
    good = verdict(_report(5.0, 20.0))
    assert all(good.values()), good
    slow = verdict(_report(5.0, 60.0, errors=1))
    assert not slow["write_p99_le_50ms"]
    assert not slow["write_p99_le_5x_p50"]
    assert not slow["zero_errors"]
    assert slow["no_window_p99_above_2x_run"]  # the start-up window does not count


def _window(up_p99: float, get_p99: float) -> dict[str, Any]:
    return {
        "methods": {
            "UpsertContact": {"calls": 60, "p50_ms": 2.0, "p99_ms": up_p99},
            "GetContact": {"calls": 120, "p50_ms": 0.8, "p99_ms": get_p99},
        }
    }


def test_window_medians_are_the_typical_window_not_the_stalled_one() -> None:
    windows = [
        _window(900.0, 900.0),  # start-up: left out
        _window(12.0, 5.0),
        _window(14.0, 4.0),
        _window(400.0, 6.0),  # one stalled window
    ]
    assert window_medians(windows) == {
        "GetContact": {"p50_ms": 0.8, "p99_ms": 5.0},
        "UpsertContact": {"p50_ms": 2.0, "p99_ms": 14.0},
    }
    assert window_medians(windows[:1]) == {}


def test_errors_add_up_by_method_and_status_over_windows() -> None:
    windows = [
        {"errors": {"ImportContacts RESOURCE_EXHAUSTED": 2}},
        {"errors": {"ImportContacts RESOURCE_EXHAUSTED": 1, "GetContact DEADLINE_EXCEEDED": 4}},
        {"errors": {}},
    ]
    assert errors_by_kind(windows) == {
        "GetContact DEADLINE_EXCEEDED": 4,
        "ImportContacts RESOURCE_EXHAUSTED": 3,
    }
