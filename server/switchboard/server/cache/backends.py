"""The backends behind `ReadCache`: process memory (`memory.py`), or Redis through aiocache.

Both store protobuf wire bytes (never pickle), so a Redis value can be read by any protobuf
runtime and never executes code when loaded; `ReadCache` encodes and decodes them. Zero
bytes are the invalidation marker: every cached message has a required field set (a
contact's id, a lead state's count or lead), so none encodes to nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from aiocache.serializers import BaseSerializer

from switchboard.server.cache.memory import MemoryCache
from switchboard.server.config.sections import CacheSettings

INVALIDATED = b""
"""Stored in place of a dropped entry for a short while; reads it as a miss."""


class WireSerializer(BaseSerializer):  # type: ignore[misc]
    """Stores protobuf wire bytes as they are. Decoding is left to the reader, which knows
    the message type (and a GetContact hit can be answered with the bytes themselves)."""

    DEFAULT_ENCODING = None

    def dumps(self, value: bytes) -> bytes:
        """The bytes, unchanged."""
        return value

    def loads(self, value: bytes | None) -> bytes | None:
        """Nothing and the invalidation marker are misses (None)."""
        return value or None


class CacheBackendError(Exception):
    """The configured backend cannot be built (for example, the redis package is missing)."""


@dataclass(frozen=True)
class Backend:
    """A cache instance plus what it raises when its server is unreachable."""

    name: str
    cache: Any  # MemoryCache, or aiocache's RedisCache
    errors: tuple[type[BaseException], ...]
    shared: bool  # one cache for every process (no sibling broadcasts needed)

    async def close(self) -> None:
        """Release connections."""
        if self.name == "redis":
            # aiocache 0.12 closes with redis' deprecated `close()`; `aclose()` is its successor.
            await self.cache.client.aclose()
        else:
            await self.cache.close()


def build_backend(settings: CacheSettings) -> Backend:
    """The backend named by `settings.backend`.

    Raises:
        CacheBackendError: `redis` was chosen but the `redis` package is not installed.
    """
    if settings.backend == "redis":
        return _redis(settings)
    return Backend("memory", MemoryCache(), (), shared=False)


def _redis(settings: CacheSettings) -> Backend:
    try:
        # Optional dependency (the `redis` extra): imported only when chosen.
        from aiocache import RedisCache
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError
    except ImportError as exc:
        raise CacheBackendError(
            "cache.backend = 'redis' needs the redis package: pip install 'switchboard[redis]'"
        ) from exc
    url = urlsplit(settings.redis_url)
    # No retries: a cache lookup that fails is a miss, and retrying would only delay the call.
    pool: dict[str, Any] = {
        "socket_timeout": settings.redis_timeout_s,
        "retry": Retry(NoBackoff(), 0),
    }
    if url.username:
        pool["username"] = unquote(url.username)
    cache = RedisCache(
        serializer=WireSerializer(),
        namespace=f"{settings.namespace}:contact",
        # No aiocache timeout (one wait_for task per call): the socket timeouts bound each
        # command instead.
        timeout=None,
        endpoint=url.hostname,
        port=url.port or 6379,
        db=int(url.path.strip("/") or 0),
        password=unquote(url.password) if url.password else None,
        ssl=url.scheme == "rediss",
        create_connection_timeout=settings.redis_timeout_s,
        connection_pool_kwargs=pool,
    )
    return Backend("redis", cache, (RedisError, OSError, TimeoutError), shared=True)
