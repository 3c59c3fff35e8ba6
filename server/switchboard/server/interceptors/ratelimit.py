"""A token bucket per caller: calls beyond the rate get RESOURCE_EXHAUSTED.

The caller is the authenticated principal when auth is on (an API-key caller's name, a JWT's
`sub`), else the peer's address. Every caller gets `limits.rate_per_s` / `rate_burst`,
unless `limits.callers.<name>` gives it its own; `CallerRates.update` swaps that table in
place (on SIGHUP), so a limit changes without restarting the server or its callers.

Buckets live in this process's memory, bounded (the least recently seen caller is forgotten
first), or in Redis (`ratelimit_redis.py`) so that every worker and replica spends from one
bucket per caller.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from switchboard.server.auth.principal import CURRENT_PRINCIPAL
from switchboard.server.config.security import CallerLimit, LimitsSettings
from switchboard.server.errors import ResourceExhausted
from switchboard.server.interceptors.chain import Context, Entry, service_of

_PRINCIPAL = "principal:"


@dataclass(frozen=True, slots=True)
class Rate:
    """One bucket's refill per second and size; `per` names whose limit it is."""

    per_s: float
    burst: int
    per: str


class CallerRates:
    """The limit of each caller: its own from `limits.callers`, else the default."""

    def __init__(self, settings: LimitsSettings) -> None:
        self._default = Rate(settings.rate_per_s, settings.rate_burst, "per caller")
        self._own: dict[str, Rate] = {}
        self.update(settings)

    def update(self, settings: LimitsSettings) -> None:
        """Take the rates of `settings` (new calls use them; saved tokens are kept)."""
        self._default = Rate(settings.rate_per_s, settings.rate_burst, "per caller")
        self._own = _own_rates(settings.callers)

    def of(self, key: str) -> Rate:
        """The rate for the bucket `key` (`principal:<name>` or `peer:<host>`)."""
        if key.startswith(_PRINCIPAL):
            own = self._own.get(key[len(_PRINCIPAL) :])
            if own is not None:
                return own
        return self._default


def _own_rates(callers: Mapping[str, CallerLimit]) -> dict[str, Rate]:
    return {
        name: Rate(limit.rate_per_s, limit.burst, f"for caller {name!r}")
        for name, limit in callers.items()
    }


class TokenBuckets:
    """Per-key token buckets in memory: `rate` tokens per second, at most `burst` saved up."""

    def __init__(
        self,
        rate: float,
        burst: int,
        max_keys: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    def take(self, key: str) -> bool:
        """Spend one token of `key`'s bucket; False when it is empty."""
        return self.spend(key) == 0.0

    def spend(self, key: str, rate: float | None = None, burst: int | None = None) -> float:
        """Spend one token of `key`'s bucket (at `rate`/`burst`, default the bucket set's);
        0.0 when one was there, else the seconds until one will be."""
        rate = self.rate if rate is None else rate
        size = float(self.burst if burst is None else burst)
        now = self._clock()
        tokens, at = self._buckets.pop(key, (size, now))
        tokens = min(size, tokens + (now - at) * rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / rate if rate > 0 else math.inf
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return wait


def caller_key(context: Context) -> str:
    """The principal's name, or the peer's host when nobody authenticated."""
    principal = CURRENT_PRINCIPAL.get()
    if principal is not None:
        return _PRINCIPAL + principal.name
    peer = context.peer() or "unknown"
    return "peer:" + peer.rpartition(":")[0]


def refusal(rate: Rate, wait_s: float) -> ResourceExhausted:
    """The error for a call over `rate`, naming the limit and when to retry."""
    wait = None if math.isinf(wait_s) else max(wait_s, 0.001)
    retry = "retry with backoff" if wait is None else f"retry in {wait:.3g} s"
    return ResourceExhausted(
        f"rate limit: {rate.per_s:g} calls/s {rate.per} (burst {rate.burst}); {retry}", wait
    )


class RateLimitGuard:
    """Spends one token per call from the caller's bucket; refuses when it is empty."""

    def __init__(
        self,
        buckets: TokenBuckets,
        exempt_services: Collection[str] = (),
        rates: CallerRates | None = None,
    ) -> None:
        self._buckets = buckets
        self._rates = rates
        self._exempt = frozenset(exempt_services)
        self._entry = Entry(self._take)

    def entry_for(self, method: str) -> Entry | None:
        """Exempt services spend no tokens."""
        return None if service_of(method) in self._exempt else self._entry

    def _take(self, context: Context) -> None:
        key = caller_key(context)
        if self._rates is None:
            rate = Rate(self._buckets.rate, self._buckets.burst, "per caller")
        else:
            rate = self._rates.of(key)
            if rate.per_s <= 0:
                return  # this caller is unlimited
        wait = self._buckets.spend(key, rate.per_s, rate.burst)
        if wait:
            raise refusal(rate, wait)
