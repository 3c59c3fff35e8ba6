"""The in-process cache backend: a dict of protobuf bytes with expiry times.

Owned here rather than taken from aiocache's `SimpleMemoryCache`: a contact lookup hit is on
the hottest path (GetContact), and aiocache's per-call wrappers (enabled check, timeout,
plugins, key building) cost about 20 times the dict read itself; reaching into its private
dict to skip them tied us to its internals. This class offers the same few async operations
the read cache uses, plus `peek`, a synchronous read that is part of its own public API.

Expiry is checked on read (`time.monotonic`), and expired entries are swept when the size
bound would otherwise refuse a new entry, so no timer runs per key.
"""

from __future__ import annotations

import time
from collections.abc import Iterable


class MemoryCache:
    """Bytes by key, each with a time to live. Not shared between processes."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[bytes, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, key: str) -> bytes | None:
        """The live value of `key` (the zero-byte invalidation marker included), or None."""
        found = self._entries.get(key)
        if found is None:
            return None
        if found[1] <= time.monotonic():
            self._entries.pop(key, None)
            return None
        return found[0]

    async def get(self, key: str) -> bytes | None:
        """The live value of `key`; the invalidation marker reads as a miss (None)."""
        return self.peek(key) or None

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Set `key` only where no live value is (SET NX); return whether it was set."""
        if self.peek(key) is not None:
            return False
        self._entries[key] = (value, time.monotonic() + ttl)
        return True

    async def multi_set(self, pairs: Iterable[tuple[str, bytes]], ttl: float) -> None:
        """Set every pair, replacing what is there."""
        expires = time.monotonic() + ttl
        for key, value in pairs:
            self._entries[key] = (value, expires)

    def sweep(self) -> int:
        """Drop expired entries; return how many are left."""
        now = time.monotonic()
        for key in [k for k, (_, expires) in self._entries.items() if expires <= now]:
            del self._entries[key]
        return len(self._entries)

    async def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()

    async def close(self) -> None:
        """Drop every entry (nothing else is held)."""
        self._entries.clear()
