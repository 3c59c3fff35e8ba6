"""The cluster proof's checks fail when they should (bench/cluster/checks.py)."""

from __future__ import annotations

from collections import Counter

from bench.cluster.checks import caller_errors_ok, check_deliveries, delivery_rate
from bench.cluster.load import LoadResult
from bench.cluster.peer import Delivery


def _result(runs: dict[str, str]) -> LoadResult:
    result = LoadResult()
    result.runs.update(runs)
    return result


def test_every_step_delivered_once_passes_and_repeats_of_a_key_are_counted() -> None:
    result = _result({"tok": "r_1"})
    seen = [Delivery("r_1:0", "tok", 0.0), Delivery("r_1:1", "tok", 1.0)]
    seen.append(Delivery("r_1:1", "tok", 2.0))  # at-least-once: the same key again
    check = check_deliveries(result, seen, dead=set())
    assert check.ok
    assert check.same_key_repeats == 1
    assert check.delivered_keys == 2


def test_a_lost_step_fails_unless_it_was_dead_lettered() -> None:
    result = _result({"tok": "r_1"})
    seen = [Delivery("r_1:0", "tok", 0.0)]
    assert check_deliveries(result, seen, dead=set()).lost == ["r_1:1"]
    assert check_deliveries(result, seen, dead={"r_1:1"}).ok


def test_one_trigger_step_under_two_keys_fails() -> None:
    # The trigger was run twice (its retry not recognised): the tool saw two runs' keys.
    result = _result({"tok": "r_1"})
    seen = [Delivery(f"{run}:{i}", "tok", 0.0) for run in ("r_1", "r_2") for i in (0, 1)]
    check = check_deliveries(result, seen, dead=set())
    assert not check.ok
    assert check.two_keys == ["tok/0", "tok/1"]
    assert check.unexpected == ["r_2:0", "r_2:1"]


def test_only_unavailable_attempts_are_allowed() -> None:
    assert caller_errors_ok(Counter({"OK": 10, "http=502": 2, "grpc=14": 1}))
    assert not caller_errors_ok(Counter({"OK": 10, "grpc=13": 1}))


def test_the_rate_is_counted_between_the_first_and_last_call() -> None:
    seen = [Delivery(f"r:{i}", "", i * 0.05) for i in range(21)]
    assert abs(delivery_rate(seen) - 20.0) < 1e-9
