"""Read cache for contacts: aiocache, holding protobuf bytes (never pickle).

Entries live `ttl_s` and are dropped on every write that touches the contact, before the
write's caller is answered, so a read after a write never sees the old value. The bound
on entries is enforced here because aiocache's memory backend has none.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiocache import SimpleMemoryCache
from aiocache.serializers import BaseSerializer

from switchboard.server.config import CacheSettings
from switchboard.server.siblings import Siblings
from switchboard.v1 import contacts_pb2


class ContactSerializer(BaseSerializer):  # type: ignore[misc]
    """Stores `Contact` messages as their wire bytes."""

    DEFAULT_ENCODING = None

    def dumps(self, value: contacts_pb2.Contact) -> bytes:
        """Encode to protobuf bytes."""
        return value.SerializeToString()

    def loads(self, value: bytes | None) -> contacts_pb2.Contact | None:
        """Decode protobuf bytes; None stays None (a miss)."""
        return None if value is None else contacts_pb2.Contact.FromString(value)


class ContactCache:
    """Contacts by id and by email. Disabled when `max_entries` is 0."""

    def __init__(self, settings: CacheSettings, siblings: Siblings | None = None) -> None:
        self._ttl = settings.ttl_s
        self._max = settings.max_entries
        # timeout=None: a memory lookup never blocks, and aiocache's default 5 s timeout wraps
        # every call in asyncio.wait_for (a new task per lookup).
        self._cache: Any = SimpleMemoryCache(
            serializer=ContactSerializer(), namespace="contact:", timeout=None
        )
        self._siblings = siblings
        self._pending: set[str] = set()
        self.hits = 0
        self.misses = 0

    async def get(self, field: str, value: str) -> contacts_pb2.Contact | None:
        """The cached contact for `field` (`id` or `email`) = `value`, or None."""
        if not self._max:
            return None
        if self._siblings is not None:
            self._pending.update(self._siblings.drain())
        if self._pending:
            pending, self._pending = self._pending, set()
            await self._drop(pending)
        found: contacts_pb2.Contact | None = await self._cache.get(f"{field}:{value}")
        if found is None:
            self.misses += 1
        else:
            self.hits += 1
        return found

    async def put(self, contact: contacts_pb2.Contact) -> None:
        """Cache under both keys, unless the bound is reached."""
        if not self._max or len(self._cache._cache) + 2 > self._max:
            return
        await self._cache.multi_set(
            [(f"id:{contact.id}", contact), (f"email:{contact.email}", contact)], ttl=self._ttl
        )

    async def invalidate(self, *keys: str) -> None:
        """Drop entries for these ids and emails (empty strings are ignored)."""
        if not self._max:
            return
        wanted = {k for k in keys if k}
        await self._drop(wanted)
        if self._siblings is not None:
            self._siblings.broadcast(wanted)

    def watch_siblings(self) -> None:
        """Also collect sibling invalidations while idle, so their socket never fills up."""
        if self._siblings is not None and self._max:
            siblings = self._siblings
            loop = asyncio.get_running_loop()
            loop.add_reader(siblings.fileno(), lambda: self._pending.update(siblings.drain()))

    async def _drop(self, keys: Iterable[str]) -> None:
        for key in keys:
            field = "email" if "@" in key else "id"
            await self._cache.delete(f"{field}:{key}")

    async def close(self) -> None:
        """Release the backend and stop watching siblings."""
        if self._siblings is not None and self._max:
            asyncio.get_running_loop().remove_reader(self._siblings.fileno())
        await self._cache.close()
