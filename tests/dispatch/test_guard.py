"""Circuit breaker and token bucket state machines, on a hand-driven clock."""

from __future__ import annotations

import logging

import pytest

from switchboard.server.config.flow import ConnectorSettings
from switchboard.server.config.sections import DispatchSettings
from switchboard.server.dispatch.guard import CircuitBreaker, TokenBucket, build_guards


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_consecutive_failures() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown_s=10.0, clock=clock)
    breaker.failure()
    breaker.failure()
    breaker.success()  # a success resets the count
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed"
    breaker.failure()
    assert breaker.state == "open"
    assert breaker.capacity() == 0
    assert not breaker.allow()
    assert breaker.reopens_in_s() == 10.0


def test_half_open_allows_one_probe_and_a_success_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown_s=5.0, clock=clock)
    breaker.failure()
    clock.now += 5.0
    assert breaker.state == "half_open"
    assert breaker.capacity() == 1
    assert breaker.allow()
    assert not breaker.allow()  # only one probe at a time
    breaker.success()
    assert breaker.state == "closed"


def test_failed_probe_opens_again_for_a_new_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=2, cooldown_s=5.0, clock=clock)
    breaker.failure()
    breaker.failure()
    clock.now += 6.0
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "open"
    assert breaker.reopens_in_s() == 5.0


def test_token_bucket_limits_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=2, clock=clock)
    assert bucket.available() == 2
    assert bucket.take() == 0.0
    assert bucket.take() == 0.0
    assert bucket.available() == 0
    assert bucket.take() == 0.5  # a third call now must wait half a second
    clock.now += 1.5
    assert bucket.available() == 2  # refilled, but never above the burst


def test_unlimited_bucket() -> None:
    bucket = TokenBucket(rate=None, burst=1)
    assert bucket.take() == 0.0
    assert bucket.available() > 1000


def test_guards_take_connector_overrides_else_dispatch_defaults() -> None:
    dispatch = DispatchSettings(connector_concurrency=7, breaker_failures=4)
    guards = build_guards(
        {
            "a": ConnectorSettings(kind="fake"),
            "b": ConnectorSettings(kind="fake", max_concurrency=2, max_attempts=9, ordered=False),
        },
        dispatch,
    )
    assert (guards["a"].max_concurrency, guards["a"].ordered) == (7, True)
    assert guards["a"].policy.max_attempts == dispatch.max_attempts
    assert (guards["b"].max_concurrency, guards["b"].ordered) == (2, False)
    assert guards["b"].policy.max_attempts == 9
    guards["b"].in_flight = 2
    assert guards["b"].budget() == 0


def test_budget_is_the_smallest_of_slots_tokens_and_breaker() -> None:
    clock = Clock()
    guards = build_guards(
        {"a": ConnectorSettings(kind="fake", max_concurrency=5, rate_per_s=1.0, rate_burst=3)},
        DispatchSettings(breaker_failures=1),
        clock,
    )
    guard = guards["a"]
    assert guard.budget() == 3  # the burst
    guard.bucket.take()
    guard.bucket.take()
    assert guard.budget() == 1
    guard.breaker.failure()
    assert guard.budget() == 0  # open: nothing, whatever the other limits say


def test_every_breaker_state_change_is_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=2, cooldown_s=5.0, clock=clock, name="crm")
    with caplog.at_level(logging.INFO, logger="switchboard.server.dispatch.guard"):
        breaker.failure()
        breaker.failure()  # opens
        breaker.failure()  # a call that was already in flight: still open, no new line
        clock.now += 6.0
        assert breaker.allow()  # half-open: the probe
        breaker.failure()  # opens again
        clock.now += 6.0
        assert breaker.allow()
        breaker.success()  # closes
        breaker.success()  # already closed: no line
    changes = [(r.levelname, r.fields["circuit"], r.fields["connector"]) for r in caplog.records]  # type: ignore[attr-defined]
    assert changes == [
        ("WARNING", "open", "crm"),
        ("WARNING", "half_open", "crm"),
        ("WARNING", "open", "crm"),
        ("WARNING", "half_open", "crm"),
        ("WARNING", "closed", "crm"),
    ]
    assert "2 consecutive failures" in caplog.records[0].getMessage()
