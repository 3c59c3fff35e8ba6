"""Limits shared through Redis: every worker and replica pointed at one Redis sees them.

Each connector has three keys under one hash tag (so a Redis Cluster keeps them on one
node): a hash with the bucket, breaker and quota, a hash of slots per holder and a sorted
set of the holders' lease ends. Two Lua scripts change them atomically, reading the time
from Redis itself so that replicas on different machines share one clock:

- `TAKE` in `peek` mode answers how many calls may start now; in `take` mode it hands out
  tickets for a list of lanes (`i` interactive, `b` bulk), with the same rules as
  `rules.py` (which documents them);
- `DONE` frees a slot and/or tells the breaker how a call went.

A claim costs two round trips (one pipelined `peek` for every connector, one `take` for
the connectors claimed), whatever the number of calls. Per-call reports are queued and
sent as one pipeline per event-loop turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from switchboard.server.dispatch.limits.base import (
    Budgets,
    Claimed,
    ClaimFn,
    Lane,
    LaneOf,
    LimitSpec,
    Ticket,
    claim_in_steps,
)
from switchboard.server.dispatch.limits.store import _log_circuit
from switchboard.server.store.base import Store

log = logging.getLogger(__name__)

_COMMON = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

TAKE = (
    _COMMON
    + """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local maxc = tonumber(ARGV[3])
local quota = tonumber(ARGV[4])
local reserve = tonumber(ARGV[5])
local holder = ARGV[6]
local lease = tonumber(ARGV[7])
local mode = ARGV[8]
local lanes = ARGV[9]
local lookahead = tonumber(ARGV[10])
local st = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'open_until', 'probe_until', 'day', 'used')
local tokens = tonumber(st[1])
local at = tonumber(st[2]) or now
local open_until = tonumber(st[3]) or 0
local probe_until = tonumber(st[4]) or 0
local day = tonumber(st[5]) or 0
local used = tonumber(st[6]) or 0
if tokens == nil then
  tokens = burst
elseif rate > 0 then
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
end
local today = math.floor(now / 86400)
if day ~= today then day = today; used = 0 end
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, h in ipairs(expired) do redis.call('HDEL', KEYS[2], h) end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now) end
local busy = 0
for _, c in ipairs(redis.call('HVALS', KEYS[2])) do busy = busy + tonumber(c) end
if redis.call('HEXISTS', KEYS[2], holder) == 1 then
  redis.call('ZADD', KEYS[3], now + lease, holder)
end
local function breaker_room()
  if open_until == 0 then return 1000000 end
  if now < open_until then return 0 end
  if probe_until <= now then return 1 end
  return 0
end
local function quota_left(lane)
  if quota < 0 then return 1000000 end
  local r = 0
  if lane == 'b' then r = reserve end
  return math.max(0, quota - r - used)
end
if mode == 'peek' then
  local rate_room = 1000000
  local wake = -1
  if rate > 0 then
    local ahead = tokens + rate * lookahead
    rate_room = math.max(0, math.floor(ahead))
    if rate_room == 0 then wake = math.floor((1 - ahead) / rate * 1000000) end
  end
  local room = math.min(rate_room, math.max(0, maxc - busy), breaker_room(), quota_left('i'))
  return {room, wake, math.floor(open_until * 1000000)}
end
local out = {}
local mine = 0
for i = 1, #lanes do
  local lane = string.sub(lanes, i, i)
  local ok, delay, probe, reason, retry = 0, 0, 0, 0, 0
  if breaker_room() == 0 then
    reason = 1
    if now < open_until then retry = math.floor((open_until - now) * 1000000) end
  elseif quota_left(lane) == 0 then
    reason = 2
    retry = math.floor(((today + 1) * 86400 - now) * 1000000)
  elseif busy >= maxc then
    reason = 3
  else
    ok = 1
    if open_until ~= 0 then probe = 1; probe_until = now + lease end
    if quota >= 0 then used = used + 1 end
    busy = busy + 1
    mine = mine + 1
    if rate > 0 then
      tokens = tokens - 1
      if tokens < 0 then delay = math.floor(-tokens / rate * 1000000) end
    end
  end
  table.insert(out, ok)
  table.insert(out, delay)
  table.insert(out, probe)
  table.insert(out, reason)
  table.insert(out, retry)
end
if mine > 0 then
  redis.call('HINCRBY', KEYS[2], holder, mine)
  redis.call('ZADD', KEYS[3], now + lease, holder)
  redis.call('PEXPIRE', KEYS[2], 172800000)
  redis.call('PEXPIRE', KEYS[3], 172800000)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now),
  'probe_until', tostring(probe_until), 'day', day, 'used', used)
redis.call('PEXPIRE', KEYS[1], 172800000)
table.insert(out, math.floor(open_until * 1000000))
return out
"""
)

DONE = (
    _COMMON
    + """
local ok = tonumber(ARGV[1])
local probe = tonumber(ARGV[2])
local release = tonumber(ARGV[3])
local holder = ARGV[4]
local threshold = tonumber(ARGV[5])
local cooldown = tonumber(ARGV[6])
if release == 1 then
  local left = redis.call('HINCRBY', KEYS[2], holder, -1)
  if left <= 0 then
    redis.call('HDEL', KEYS[2], holder)
    redis.call('ZREM', KEYS[3], holder)
  end
end
local st = redis.call('HMGET', KEYS[1], 'failures', 'open_until')
local failures = tonumber(st[1]) or 0
local open_until = tonumber(st[2]) or 0
local changed = ''
if ok == 1 then
  if open_until ~= 0 then changed = 'closed' end
  open_until = 0
  redis.call('HSET', KEYS[1], 'failures', 0, 'open_until', 0, 'probe_until', 0)
elseif ok == 0 then
  failures = failures + 1
  if probe == 1 or failures >= threshold then
    if probe == 1 or open_until == 0 then changed = 'open' end
    open_until = now + cooldown
    redis.call('HSET', KEYS[1], 'failures', failures, 'open_until', tostring(open_until),
      'probe_until', 0)
  else
    redis.call('HSET', KEYS[1], 'failures', failures)
  end
end
return {changed, math.floor(open_until * 1000000)}
"""
)

_REASONS = {1: "circuit open", 2: "daily quota used up", 3: "no free concurrency slot"}


@dataclass(slots=True)
class _Done:
    name: str
    ok: int  # 1 success, 0 transient failure, -1 no report
    probe: bool
    release: bool


def client_for(url: str, timeout_s: float) -> aioredis.Redis:
    """A client that fails fast: no retries (an outage falls back to local limits)."""
    parts = urlsplit(url)
    return aioredis.Redis(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 6379,
        db=int(parts.path.strip("/") or 0),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        ssl=parts.scheme == "rediss",
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
    )


class RedisLimits:
    """`Limits` in Redis. Errors propagate: `degrade.Degrading` turns them into local limits."""

    def __init__(
        self,
        client: aioredis.Redis,
        specs: Mapping[str, LimitSpec],
        holder: str,
        lease_s: float,
        namespace: str,
        monotonic_now: Callable[[], float],
        lookahead_s: float = 0.0,
    ) -> None:
        self._client = client
        self._specs = dict(specs)
        self._holder = holder
        self._lease_s = lease_s
        self._namespace = namespace
        self._lookahead_s = lookahead_s
        self._take = client.register_script(TAKE)
        self._done = client.register_script(DONE)
        self._pending: list[_Done] = []
        self._flushing: asyncio.Task[None] | None = None
        self._open_until: dict[str, float] = {}  # Redis time, seconds
        self._now = monotonic_now
        self._offset = 0.0  # Redis time minus `monotonic_now`, learnt by `sync_clock`
        self.on_error: Callable[[BaseException], None] = lambda exc: None

    def keys(self, name: str) -> list[str]:
        """The connector's state hash, slot hash and lease set."""
        tag = f"{{{self._namespace}:limits:{name}}}"
        return [f"{tag}:state", f"{tag}:slots", f"{tag}:leases"]

    def _args(self, spec: LimitSpec, mode: str, lanes: str) -> list[Any]:
        return [
            spec.rate_per_s if spec.rate_per_s is not None else -1,
            spec.burst,
            spec.max_concurrency,
            spec.daily_quota if spec.daily_quota is not None else -1,
            spec.interactive_reserve,
            self._holder,
            self._lease_s,
            mode,
            lanes,
            self._lookahead_s,
        ]

    async def budgets(self) -> Budgets:
        """One pipelined `peek` for every connector."""
        names = list(self._specs)
        async with self._client.pipeline(transaction=False) as pipe:
            for name in names:
                await self._take(self.keys(name), self._args(self._specs[name], "peek", ""), pipe)
            replies = await pipe.execute()
        counts: dict[str, int] = {}
        wake: float | None = None
        for name, (room, wake_us, open_us) in zip(names, replies, strict=True):
            counts[name] = int(room)
            self._open_until[name] = int(open_us) / 1e6
            if int(wake_us) >= 0:
                wake = min(wake or 1e9, int(wake_us) / 1e6)
        return Budgets(counts, wake)

    async def take(self, asks: Mapping[str, Sequence[Lane]]) -> dict[str, list[Ticket]]:
        """One pipelined `take` for the connectors asked."""
        names = [n for n in asks if n in self._specs and asks[n]]
        if not names:
            return {}
        async with self._client.pipeline(transaction=False) as pipe:
            for name in names:
                codes = "".join("b" if lane == "bulk" else "i" for lane in asks[name])
                await self._take(
                    self.keys(name), self._args(self._specs[name], "take", codes), pipe
                )
            replies = await pipe.execute()
        out: dict[str, list[Ticket]] = {}
        for name, reply in zip(names, replies, strict=True):
            values = [int(v) for v in reply]
            self._open_until[name] = values[-1] / 1e6
            out[name] = [
                self._ticket(values[5 * i : 5 * i + 5], lane) for i, lane in enumerate(asks[name])
            ]
        return out

    def _ticket(self, v: list[int], lane: Lane) -> Ticket:
        ok, delay_us, probe, reason, retry_us = v
        if ok:
            return Ticket(True, delay_s=delay_us / 1e6, probe=bool(probe), source=self)
        why = _REASONS[reason] + (f" ({lane} lane)" if reason == 2 else "")
        return Ticket(False, reason=why, retry_in_s=retry_us / 1e6, source=self)

    async def claim(self, store: Store, claim: ClaimFn, lane_of: LaneOf) -> Claimed:
        """Peek, claim in the store, take."""
        return await claim_in_steps(self, store, claim, lane_of)

    async def acquire(self, name: str, lane: Lane) -> Ticket:
        """One `take` round trip."""
        if name not in self._specs:
            return Ticket(True, source=self)
        return (await self.take({name: [lane]}))[name][0]

    def admit(self, name: str, ticket: Ticket | None) -> bool:
        """Refuse only when the circuit is known open and this call is not its probe."""
        if ticket is not None and ticket.probe:
            return True
        return self.circuit(name) != "open"

    def report(self, name: str, ok: bool, ticket: Ticket | None) -> None:
        """Queued; sent with the next pipeline."""
        if name in self._specs:
            self._queue(_Done(name, int(ok), ticket is not None and ticket.probe, False))

    def release(self, name: str, ticket: Ticket) -> None:
        """Queued; sent with the next pipeline."""
        if name in self._specs and ticket.ok:
            self._queue(_Done(name, -1, False, True))

    def circuit(self, name: str) -> str:
        """From the breaker state this process saw last (Redis time, as seen then)."""
        until = self._open_until.get(name, 0.0)
        if until == 0.0:
            return "closed"
        return "open" if self._offset + self._now() < until else "half_open"

    def _queue(self, op: _Done) -> None:
        self._pending.append(op)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    async def flush(self) -> None:
        """Send the queued reports and releases now."""
        await self._flush()

    async def _flush(self) -> None:
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipe:
                for op in pending:
                    spec = self._specs[op.name]
                    args: list[int | float | str] = [
                        op.ok,
                        int(op.probe),
                        int(op.release),
                        self._holder,
                        spec.breaker_failures,
                        spec.breaker_cooldown_s,
                    ]
                    await self._done(self.keys(op.name), args, pipe)
                replies = await pipe.execute()
        except Exception as exc:
            # Not kept: slots are leased and expire; the breaker hears from the next calls.
            self.on_error(exc)
            return
        for op, (changed, open_us) in zip(pending, replies, strict=True):
            self._open_until[op.name] = int(open_us) / 1e6
            if changed:
                state = changed.decode() if isinstance(changed, bytes) else str(changed)
                _log_circuit(op.name, state, self._specs[op.name], op.ok == 1, op.probe)

    async def sync_clock(self) -> None:
        """Learn Redis time against this process's clock (once at start)."""
        seconds, micros = await self._client.time()
        self._offset = seconds + micros / 1e6 - self._now()

    async def aclose(self) -> None:
        """Send what is queued, then close the connections."""
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing
        with contextlib.suppress(Exception):
            await self._flush()
        await self._client.aclose()
