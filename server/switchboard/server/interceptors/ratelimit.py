"""A token bucket per caller: calls beyond the rate get RESOURCE_EXHAUSTED.

The caller is the authenticated principal when auth is on, else the peer's address. Buckets
live in memory, bounded: the least recently seen caller is forgotten first.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Collection

from switchboard.server.auth.principal import CURRENT_PRINCIPAL
from switchboard.server.errors import ResourceExhausted
from switchboard.server.interceptors.chain import Context, Entry, service_of


class TokenBuckets:
    """Per-key token buckets: `rate` tokens per second, at most `burst` saved up."""

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
        now = self._clock()
        tokens, at = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)
        return allowed


def caller_key(context: Context) -> str:
    """The principal's name, or the peer's host when nobody authenticated."""
    principal = CURRENT_PRINCIPAL.get()
    if principal is not None:
        return f"principal:{principal.name}"
    peer = context.peer() or "unknown"
    return "peer:" + peer.rpartition(":")[0]


class RateLimitGuard:
    """Spends one token per call from the caller's bucket; refuses when it is empty."""

    def __init__(self, buckets: TokenBuckets, exempt_services: Collection[str] = ()) -> None:
        self._buckets = buckets
        self._exempt = frozenset(exempt_services)
        self._entry = Entry(self._take)

    def entry_for(self, method: str) -> Entry | None:
        """Exempt services spend no tokens."""
        return None if service_of(method) in self._exempt else self._entry

    def _take(self, context: Context) -> None:
        if not self._buckets.take(caller_key(context)):
            raise ResourceExhausted(
                f"rate limit: {self._buckets.rate:g} calls/s per caller "
                f"(burst {self._buckets.burst}); retry with backoff"
            )
