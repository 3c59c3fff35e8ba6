"""Per-connector protection: circuit breaker, concurrency limit, rate limit, retry policy.

The breaker is a small state machine written here rather than taken from a library: the
candidates on PyPI wrap a call (`breaker.call(fn)`) and raise when open, while the
dispatcher needs to ask before claiming ("how many steps may this connector take now?")
so that an open circuit leaves steps waiting in the outbox untouched, with no attempt spent.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from switchboard.server.config.flow import ConnectorSettings
from switchboard.server.config.sections import DispatchSettings
from switchboard.server.dispatch.retry import RetryPolicy

Clock = Callable[[], float]
_UNLIMITED = 1_000_000
log = logging.getLogger(__name__)


class CircuitBreaker:
    """Closed → (N consecutive failures) → open → (cool-down) → half-open: one probe call.

    A probe that succeeds closes the circuit; one that fails opens it again for a new
    cool-down. While open, no call reaches the connector. Every change of state is logged
    at WARNING, naming the connector (`name`).
    """

    def __init__(
        self, threshold: int, cooldown_s: float, clock: Clock = time.monotonic, name: str = ""
    ) -> None:
        self.name = name
        self._threshold = threshold
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        """One of closed, open (cooling down) or half_open (the probe may go or is out)."""
        if self._opened_at is None:
            return "closed"
        if self._clock() < self._opened_at + self._cooldown_s:
            return "open"
        return "half_open"

    def capacity(self) -> int:
        """How many calls may start now: unlimited, none, or the one probe."""
        state = self.state
        if state == "closed":
            return _UNLIMITED
        return int(state == "half_open" and not self._probing)

    def allow(self) -> bool:
        """Ask to make one call now; in half-open state this takes the single probe."""
        if self.capacity() == 0:
            return False
        if self._opened_at is not None:
            self._probing = True
            self._changed("half_open", "one probe call goes through")
        return True

    def reopens_in_s(self) -> float:
        """Seconds until a probe may go (0 when closed)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self._cooldown_s - self._clock())

    def success(self) -> None:
        """The connector answered: close the circuit."""
        if self._opened_at is not None:
            self._changed("closed", "a call succeeded")
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failure(self) -> None:
        """The connector failed transiently: count it; open at the threshold or on a probe."""
        self._failures += 1
        if self._probing or self._failures >= self._threshold:
            why = (
                "the probe call failed"
                if self._probing
                else f"{self._failures} consecutive failures"
            )
            if self._probing or self._opened_at is None:  # not while already open
                self._changed("open", f"{why}; next probe in {self._cooldown_s:g}s")
            self._opened_at = self._clock()
        self._probing = False

    def _changed(self, state: str, why: str) -> None:
        log.warning(
            "circuit for connector %s is %s: %s",
            self.name,
            state,
            why,
            extra={"fields": {"connector": self.name, "circuit": state}},
        )


class TokenBucket:
    """`rate` calls per second on average, up to `burst` at once; None rate: unlimited."""

    def __init__(self, rate: float | None, burst: int, clock: Clock = time.monotonic) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._at = clock()

    def _refill(self) -> None:
        now = self._clock()
        if self._rate is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now

    def available(self) -> int:
        """Whole calls that may start now."""
        if self._rate is None:
            return _UNLIMITED
        self._refill()
        return math.floor(self._tokens)

    def take(self) -> float:
        """Spend one token; return how long to wait first if none was left (0: go now)."""
        if self._rate is None:
            return 0.0
        self._refill()
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate


@dataclass
class ConnectorGuard:
    """Everything the dispatcher enforces for one connector."""

    name: str
    policy: RetryPolicy
    breaker: CircuitBreaker
    bucket: TokenBucket
    max_concurrency: int
    timeout_s: float
    ordered: bool
    in_flight: int = 0

    def budget(self) -> int:
        """Steps this connector may be handed now."""
        free = self.max_concurrency - self.in_flight
        return max(0, min(free, self.bucket.available(), self.breaker.capacity()))


def build_guards(
    connectors: Mapping[str, ConnectorSettings],
    dispatch: DispatchSettings,
    clock: Clock = time.monotonic,
) -> dict[str, ConnectorGuard]:
    """One guard per configured connector; unset settings take the dispatch defaults."""

    def pick(value: float | None, default: float) -> float:
        return default if value is None else value

    guards: dict[str, ConnectorGuard] = {}
    for name, c in connectors.items():
        policy = RetryPolicy(
            max_attempts=int(pick(c.max_attempts, dispatch.max_attempts)),
            base_backoff_s=pick(c.base_backoff_s, dispatch.base_backoff_s),
            max_backoff_s=pick(c.max_backoff_s, dispatch.max_backoff_s),
            max_retry_after_s=dispatch.max_retry_after_s,
        )
        breaker = CircuitBreaker(
            int(pick(c.breaker_failures, dispatch.breaker_failures)),
            pick(c.breaker_cooldown_s, dispatch.breaker_cooldown_s),
            clock,
            name,
        )
        guards[name] = ConnectorGuard(
            name=name,
            policy=policy,
            breaker=breaker,
            bucket=TokenBucket(c.rate_per_s, c.rate_burst, clock),
            max_concurrency=int(pick(c.max_concurrency, dispatch.connector_concurrency)),
            timeout_s=c.timeout_s,
            ordered=dispatch.per_contact_ordering if c.ordered is None else c.ordered,
        )
    return guards
