"""The retry policy: classification, attempts cap, full-jitter backoff, Retry-After."""

from __future__ import annotations

import pytest

from switchboard.server.dispatch.retry import RetryPolicy
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError


def _policy(max_attempts: int = 4, max_retry_after_s: float = 60.0) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=max_attempts,
        base_backoff_s=1.0,
        max_backoff_s=5.0,
        max_retry_after_s=max_retry_after_s,
    )


@pytest.mark.parametrize(
    "exc",
    [
        pytest.param(RetryableConnectorError("503"), id="retryable"),
        pytest.param(TimeoutError(), id="timeout"),
        pytest.param(ConnectionResetError(), id="network"),
    ],
)
def test_transient_errors_are_retried(exc: Exception) -> None:
    decision = _policy().decide(1, exc)
    assert decision.retry


def test_permanent_error_is_not_retried() -> None:
    decision = _policy().decide(1, PermanentConnectorError("400"))
    assert (decision.retry, decision.reason) == (False, "permanent_error")


def test_the_cap_stops_retries() -> None:
    policy = _policy(max_attempts=3)
    assert policy.decide(2, TimeoutError()).retry
    decision = policy.decide(3, TimeoutError())
    assert (decision.retry, decision.reason) == (False, "retries_exhausted")


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [
        pytest.param(1, 1.0, id="first"),
        pytest.param(2, 2.0, id="second"),
        pytest.param(3, 4.0, id="third"),
        pytest.param(10, 5.0, id="capped"),
    ],
)
def test_backoff_is_full_jitter_under_an_exponential_ceiling(attempt: int, ceiling: float) -> None:
    policy = _policy(max_attempts=100)
    delays = [policy.decide(attempt, TimeoutError()).delay_s for _ in range(200)]
    assert all(0.0 <= d <= ceiling for d in delays)
    assert max(delays) > ceiling / 2  # spread over the window, not pinned to its floor
    assert min(delays) < ceiling / 2


def test_retry_after_is_honoured_and_capped() -> None:
    asked = _policy().decide(1, RetryableConnectorError("429", retry_after_s=30.0))
    capped = _policy(max_retry_after_s=10.0).decide(
        1, RetryableConnectorError("429", retry_after_s=3600.0)
    )
    assert asked.delay_s == 30.0
    assert capped.delay_s == 10.0
