"""Read cache for contacts and lead states, in process memory or Redis, holding protobuf bytes.

Freshness: every write drops the entries it touches before its caller is answered, so a read
after a write never sees the old value. A dropped entry is replaced by an invalidation marker
for `invalidation_hold_s`, and entries are only ever added where no key exists (SET NX), so a read
that fetched the old row just before the write cannot put it back after the write.

With the memory backend each process has its own cache: worker siblings are told of every
invalidation (`Siblings`), and the bound on entries is enforced here. With Redis, one cache is
shared by every worker and replica, so no broadcast is needed.

A backend failure (Redis down or slow) never fails a call: it is logged (at most every
`_LOG_EVERY_S`) and the lookup is a miss. An invalidation that cannot reach Redis is kept
and replayed every `_RETRY_S` until Redis confirms it; until then this process bypasses the
cache, so it never serves the stale entry itself. Other replicas could, at worst until the
replay or the entry's TTL (see docs/caching.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from switchboard.server.cache.backends import INVALIDATED, build_backend
from switchboard.server.cache.entries_pb2 import LeadState
from switchboard.server.cache.memory import MemoryCache
from switchboard.server.cache.siblings import Siblings
from switchboard.server.config.sections import CacheSettings
from switchboard.v1 import contacts_pb2

log = logging.getLogger(__name__)

_RETRY_S = 1.0  # after a backend error: skip the backend this long, then retry
_LOG_EVERY_S = 10.0
_MAX_PENDING = 100_000  # beyond this many unconfirmed invalidations, clear the namespace


@dataclass(frozen=True)
class CacheStats:
    """Counters of one cache, labelled with its backend (the hook for metric export)."""

    backend: str
    hits: int
    misses: int
    errors: int
    pending_invalidations: int

    def hit_ratio(self) -> float:
        """Hits over lookups; 0.0 before the first lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


class ReadCache:
    """Contacts by id and by email, and lead states by contact id (`lead_key`). Disabled when
    `max_entries` is 0."""

    def __init__(self, settings: CacheSettings, siblings: Siblings | None = None) -> None:
        backend = build_backend(settings)
        self.backend = backend.name
        self._backend = backend
        self._cache = backend.cache
        # Memory hits are a synchronous `peek`: no await, no per-call wrappers.
        self._memory: MemoryCache | None = (
            backend.cache if isinstance(backend.cache, MemoryCache) else None
        )
        self._errors = backend.errors
        self._enabled = settings.max_entries > 0
        self._max_entries = settings.max_entries  # enforced here for memory; Redis bounds itself
        # Redis counts expiry in whole milliseconds and refuses 0.
        self._ttl = max(settings.ttl_s, 0.001)
        self._marker_ttl = max(min(settings.invalidation_hold_s, settings.ttl_s), 0.001)
        self._siblings = None if backend.shared else siblings
        self._pending: set[str] = set()
        self._clear_all = False
        self._down_until = 0.0
        self._next_log = 0.0
        self._replay: asyncio.Task[None] | None = None
        self.hits = 0
        self.misses = 0
        self.errors = 0

    def stats(self) -> CacheStats:
        """A snapshot of the counters."""
        return CacheStats(self.backend, self.hits, self.misses, self.errors, len(self._pending))

    def hit_ratio(self) -> float:
        """Hits over lookups since start; 0.0 before the first lookup."""
        return self.stats().hit_ratio()

    async def get(self, field: str, value: str) -> contacts_pb2.Contact | None:
        """The cached contact for `field` (`id` or `email`) = `value`, or None."""
        raw = await self.get_wire(field, value)
        return None if raw is None else contacts_pb2.Contact.FromString(raw)

    async def get_wire(self, field: str, value: str) -> bytes | None:
        """The cached contact's protobuf bytes, or None."""
        return await self._lookup(f"{field}:{value}")

    async def put(self, contact: contacts_pb2.Contact) -> None:
        """Cache under both keys, unless the bound is reached or a key was just dropped."""
        data = contact.SerializeToString()
        await self._add([(f"id:{contact.id}", data), (f"email:{contact.email}", data)])

    async def get_lead_state(self, contact_id: str) -> LeadState | None:
        """The cached lead state of a contact, or None."""
        raw = await self.get_lead_state_wire(contact_id)
        return None if raw is None else LeadState.FromString(raw)

    async def get_lead_state_wire(self, contact_id: str) -> bytes | None:
        """The cached lead state's protobuf bytes, or None."""
        return await self._lookup(lead_key(contact_id))

    async def put_lead_state(self, contact_id: str, state: LeadState) -> None:
        """Cache a lead state, unless the bound is reached or its key was just dropped."""
        await self._add([(lead_key(contact_id), state.SerializeToString())])

    async def _lookup(self, key: str) -> bytes | None:
        if not self._enabled:
            return None
        if self._siblings is not None:
            self._pending.update(self._siblings.drain())
        found: bytes | None = None
        if self._memory is not None:
            if not self._pending or await self._flush():
                found = self._memory.peek(key) or None  # b"": a marker
        elif await self._flush() and not self._down():
            try:
                found = await self._cache.get(key)
            except self._errors as exc:
                self._failed("lookup", exc)
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    async def _add(self, entries: list[tuple[str, bytes]]) -> None:
        if not self._enabled or self._pending or self._down():
            return
        memory = self._memory
        # Over the bound: sweep expired entries first (rare, O(n)), then refuse if still over.
        if (
            memory is not None
            and len(memory) + len(entries) > self._max_entries
            and memory.sweep() + len(entries) > self._max_entries
        ):
            return
        for key, data in entries:
            try:
                await self._cache.add(key, data, ttl=self._ttl)
            except ValueError:
                pass  # aiocache: the key exists (a live entry, or a recent invalidation's marker)
            except self._errors as exc:
                self._failed("store", exc)
                return

    async def invalidate(self, *keys: str) -> None:
        """Drop entries for these contact ids and emails, and `lead_key`s (empty strings are
        ignored)."""
        if not self._enabled:
            return
        wanted = {k for k in keys if k}
        self._pending.update(wanted)
        await self._flush()
        if self._siblings is not None:
            self._siblings.broadcast(wanted)

    def watch_siblings(self) -> None:
        """Also collect sibling invalidations while idle, so their socket never fills up."""
        if self._siblings is not None and self._enabled:
            siblings = self._siblings
            loop = asyncio.get_running_loop()
            loop.add_reader(siblings.fileno(), lambda: self._pending.update(siblings.drain()))

    async def close(self) -> None:
        """Stop replaying, stop watching siblings and release the backend."""
        if self._replay is not None:
            self._replay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replay
        if self._siblings is not None and self._enabled:
            asyncio.get_running_loop().remove_reader(self._siblings.fileno())
        with contextlib.suppress(*self._errors):
            await self._backend.close()

    async def _flush(self) -> bool:
        """Mark every pending key dropped; False while the backend has not confirmed it."""
        if not self._pending:
            return True
        if self._down():
            self._keep_replaying()  # the keys of a write made while the backend is skipped
            return False
        keys, self._pending = self._pending, set()
        try:
            if self._clear_all:
                await self._clear()
                self._clear_all = False
            markers = [(_key(k), INVALIDATED) for k in keys]
            await self._cache.multi_set(markers, ttl=self._marker_ttl)
        except self._errors as exc:
            self._pending |= keys
            self._failed("invalidation", exc)
            self._keep_replaying()
            return False
        return True

    async def _clear(self) -> None:
        if self._memory is not None:
            await self._memory.clear()
        else:  # aiocache's Redis cache: only this cache's namespace
            await self._cache.clear(namespace=self._cache.namespace)

    def _keep_replaying(self) -> None:
        if len(self._pending) > _MAX_PENDING:
            # Too many to remember: clear this namespace once Redis is back (one marker key
            # stays pending so that lookups keep bypassing the cache until then).
            self._pending = {self._pending.pop()}
            self._clear_all = True
        if self._replay is None or self._replay.done():
            self._replay = asyncio.get_running_loop().create_task(self._replay_pending())

    async def _replay_pending(self) -> None:
        # Other replicas may read a stale entry until this succeeds (or the entry expires).
        while self._pending:
            await asyncio.sleep(_RETRY_S)
            if await self._flush():
                log.info("cache backend reachable again; pending invalidations applied")

    def _down(self) -> bool:
        return self._down_until > time.monotonic()

    def _failed(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        now = time.monotonic()
        self._down_until = now + _RETRY_S
        if now >= self._next_log:
            self._next_log = now + _LOG_EVERY_S
            log.warning(
                "cache %s failed on %s (%s: %s); treated as a miss (%d errors so far, "
                "logged at most every %.0f s)",
                self.backend,
                what,
                type(exc).__name__,
                exc,
                self.errors,
                _LOG_EVERY_S,
            )


_LEAD = "lead:"


def lead_key(contact_id: str) -> str:
    """The key of a contact's lead state, for `ReadCache.invalidate`."""
    return _LEAD + contact_id


def _key(key: str) -> str:
    if "@" in key:
        return f"email:{key}"
    return key if key.startswith(_LEAD) else f"id:{key}"
