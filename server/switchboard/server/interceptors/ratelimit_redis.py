"""Per-caller token buckets in Redis, shared by every worker and replica.

With `limits.backend = "redis"` (or `auto` when the connector limits are in Redis), a
caller's calls spend from one bucket wherever they land, so a limit of 300 calls/s holds
for the whole deployment rather than per process. One script call per guarded call (about
one round trip on the event loop); the bucket's refill uses Redis's clock, so the
processes' clocks need not agree. When Redis does not answer, the process falls back to
its own in-memory buckets (logged), which is what the limit was before it was shared.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Any

from switchboard.server.interceptors.chain import Context, Entry, service_of
from switchboard.server.interceptors.ratelimit import (
    CallerRates,
    TokenBuckets,
    caller_key,
    refusal,
)

log = logging.getLogger(__name__)
_WARN_EVERY_S = 10.0

# KEYS[1] the bucket; ARGV rate/s, burst. Returns 0 when a token was spent, else the
# milliseconds until one will be there (-1: never, rate 0).
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(v[1]) or burst
local at = tonumber(v[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
elseif rate > 0 then
  wait = math.ceil((1 - tokens) / rate * 1000)
else
  wait = -1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
local full = 3600
if rate > 0 then full = burst / rate end
redis.call('PEXPIRE', KEYS[1], math.ceil(full * 1000) + 1000)
return wait
"""


class RedisRateLimitGuard:
    """`RateLimitGuard` with its buckets in Redis (`prefix` + caller key)."""

    def __init__(
        self,
        client: Any,  # redis.asyncio.Redis: untyped enough that Any says as much
        rates: CallerRates,
        fallback: TokenBuckets,
        exempt_services: Collection[str] = (),
        prefix: str = "switchboard:caller-rate:",
    ) -> None:
        self._client = client
        self._script = client.register_script(_TAKE)
        self._rates = rates
        self._fallback = fallback
        self._prefix = prefix
        self._exempt = frozenset(exempt_services)
        self._entry = Entry(self._take, is_async=True)
        self._warned_at = float("-inf")

    def entry_for(self, method: str) -> Entry | None:
        """Exempt services spend no tokens."""
        return None if service_of(method) in self._exempt else self._entry

    async def _take(self, context: Context) -> None:
        key = caller_key(context)
        rate = self._rates.of(key)
        if rate.per_s <= 0:
            return
        try:
            wait_ms = int(
                await self._script(keys=[self._prefix + key], args=[rate.per_s, rate.burst])
            )
            wait = float("inf") if wait_ms < 0 else wait_ms / 1000
        except Exception as exc:
            now = time.monotonic()
            if now - self._warned_at > _WARN_EVERY_S:
                log.warning("caller rate limits: Redis failed (%s); limiting per process", exc)
                self._warned_at = now
            wait = self._fallback.spend(key, rate.per_s, rate.burst)
        if wait:
            raise refusal(rate, wait)

    async def aclose(self) -> None:
        """Close the Redis client."""
        await self._client.aclose()
