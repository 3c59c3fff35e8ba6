"""Retry policy per connector: which failures to retry, how long to wait, when to stop.

Built from tenacity's strategies (`wait_random_exponential` is exponential backoff with full
jitter, `retry_if_exception` classifies, `stop_after_attempt` caps), but not its retry loop:
Switchboard's retries live in the durable outbox, so a retry waits as a row with a future
`available_us` rather than as a sleeping coroutine. That way a retry survives a restart,
holds no worker slot while it waits, and lets other steps go first. tenacity evaluates
each decision for one attempt; the outbox carries the attempt count between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import tenacity

from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError


def is_retryable(exc: BaseException) -> bool:
    """Permanent errors are final; transient ones, timeouts and network errors are retried.

    Other exceptions (an adapter bug, an unexpected library error) are retried too, as the
    adapter contract promises: after the attempt cap they are dead-lettered for a person.
    """
    return not isinstance(exc, PermanentConnectorError)


def retry_after_s(exc: BaseException) -> float | None:
    """The delay the tool asked for (HTTP Retry-After), if any."""
    if isinstance(exc, RetryableConnectorError):
        return exc.retry_after_s
    return None


@dataclass(frozen=True, slots=True)
class Decision:
    """Retry after `delay_s`, or give up (`retry` false) for `reason`."""

    retry: bool
    delay_s: float = 0.0
    reason: str = ""  # "permanent_error" or "retries_exhausted" when giving up


class RetryPolicy:
    """One connector's policy: attempts cap, full-jitter backoff, Retry-After honoured."""

    def __init__(
        self,
        max_attempts: int,
        base_backoff_s: float,
        max_backoff_s: float,
        max_retry_after_s: float,
    ) -> None:
        self.max_attempts = max_attempts
        self._max_retry_after_s = max_retry_after_s
        self._wait = tenacity.wait_random_exponential(multiplier=base_backoff_s, max=max_backoff_s)
        self._retry = tenacity.retry_if_exception(is_retryable)
        self._stop = tenacity.stop_after_attempt(max_attempts)
        self._owner = tenacity.Retrying()  # RetryCallState wants an owner; it is never run

    def decide(self, attempt: int, exc: BaseException) -> Decision:
        """What to do after attempt number `attempt` (1-based) failed with `exc`."""
        state = tenacity.RetryCallState(self._owner, None, (), {})
        state.attempt_number = attempt
        state.set_exception((type(exc), exc, exc.__traceback__))
        if not self._retry(state):
            return Decision(False, reason="permanent_error")
        if self._stop(state):
            return Decision(False, reason="retries_exhausted")
        delay = self._wait(state)
        asked = retry_after_s(exc)
        if asked is not None:
            # The tool knows when it will take calls again; waiting less only earns a 429.
            delay = max(delay, min(asked, self._max_retry_after_s))
        return Decision(True, delay_s=delay)
