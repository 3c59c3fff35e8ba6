"""ReadCache rules that hold for every backend: counters, the marker after a write, config."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from switchboard.client import NotFoundError, Switchboard
from switchboard.server.app.build import App, StartupError, build_app
from switchboard.server.cache.memory import MemoryCache
from switchboard.server.cache.read_cache import ReadCache
from switchboard.server.config.sections import CacheSettings
from switchboard.server.config.settings import Settings, SettingsError, defaults, load_settings
from switchboard.v1 import contacts_pb2

StartApp = Callable[..., Awaitable[App]]


def _memory(**overrides: Any) -> CacheSettings:
    return CacheSettings(**{"invalidation_hold_s": 60.0, **overrides})


async def test_hit_ratio_counts_lookups_through_the_server(start_app: StartApp) -> None:
    app = await start_app(cache={**defaults()["cache"], "invalidation_hold_s": 0.02})
    assert app.cache.hit_ratio() == 0.0
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        c = (await sb.contacts.upsert(email="ratio@example.com")).contact
        await asyncio.sleep(0.05)  # past the write's invalidation hold
        await sb.contacts.get(id=c.id)  # miss, then cached under id and email
        for _ in range(3):
            await sb.contacts.get(email="ratio@example.com")
    stats = app.cache.stats()
    assert (stats.backend, stats.hits, stats.misses, stats.errors) == ("memory", 3, 1, 0)
    assert app.cache.hit_ratio() == 0.75


async def test_a_read_that_raced_a_write_cannot_cache_the_old_row() -> None:
    cache = ReadCache(_memory())
    old = contacts_pb2.Contact(id="c_1", email="race@example.com", version=1)
    assert await cache.get("id", "c_1") is None  # a reader misses and reads version 1...
    await cache.invalidate("c_1", "race@example.com")  # ...a write lands meanwhile...
    await cache.put(old)  # ...and the reader tries to cache what it read
    assert await cache.get("id", "c_1") is None
    assert await cache.get("email", "race@example.com") is None
    await cache.close()


async def test_entries_are_cached_when_no_write_intervened() -> None:
    cache = ReadCache(_memory())
    contact = contacts_pb2.Contact(id="c_2", email="calm@example.com", version=1)
    await cache.put(contact)
    assert await cache.get("email", "calm@example.com") == contact
    assert cache.stats().hits == 1
    await cache.close()


async def test_max_entries_bounds_the_memory_backend() -> None:
    cache = ReadCache(_memory(max_entries=2))
    await cache.put(contacts_pb2.Contact(id="c_3", email="a@example.com"))
    await cache.put(contacts_pb2.Contact(id="c_4", email="b@example.com"))
    assert await cache.get("id", "c_3") is not None
    assert await cache.get("id", "c_4") is None  # over the bound: not cached
    await cache.close()


@pytest.mark.parametrize(
    ("cache", "message"),
    [
        pytest.param({"backend": "memcached"}, "cache.backend", id="unknown-backend"),
        pytest.param({"redis_url": "http://x:1/0"}, "cache.redis_url", id="not-redis-scheme"),
        pytest.param({"redis_url": "redis://x:port/0"}, "cache.redis_url", id="bad-port"),
        pytest.param({"redis_url": "redis://x:1/zero"}, "cache.redis_url", id="bad-db"),
        pytest.param({"namespace": "has space"}, "cache.namespace", id="bad-namespace"),
        pytest.param({"invalidation_hold_s": 0}, "cache.invalidation_hold_s", id="zero-hold"),
    ],
)
def test_bad_cache_settings_are_refused(cache: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(cache=cache)


async def test_erasure_by_id_drops_the_email_entry_too(start_app: StartApp) -> None:
    app = await start_app(cache={**defaults()["cache"], "invalidation_hold_s": 0.02})
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        c = (await sb.contacts.upsert(email="erase@example.com")).contact
        await asyncio.sleep(0.05)  # past the write's invalidation hold
        await sb.contacts.get(email="erase@example.com")  # cached under id and email
        await sb.contacts.delete(id=c.id)
        with pytest.raises(NotFoundError):
            await sb.contacts.get(email="erase@example.com")


async def test_redis_backend_without_the_redis_package_refuses_to_start(
    make_settings: Callable[..., Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "redis.exceptions", None)  # import fails, as if missing
    settings = make_settings(cache={**defaults()["cache"], "backend": "redis"})
    with pytest.raises(StartupError, match=r"pip install 'switchboard\[redis\]'"):
        await build_app(settings)


async def test_memory_entries_expire_and_markers_block_re_adding() -> None:
    cache = ReadCache(_memory(invalidation_hold_s=0.05, ttl_s=0.2))
    contact = contacts_pb2.Contact(id="c_9", email="same@example.com", first_name="A")
    await cache.put(contact)
    assert await cache.get("id", "c_9") == contact
    await cache.invalidate("c_9")  # a marker: a miss, and a put cannot bring the old row back
    assert await cache.get("id", "c_9") is None
    await cache.put(contact)
    assert await cache.get("id", "c_9") is None
    assert await cache.get("email", "same@example.com") == contact  # not dropped
    await asyncio.sleep(0.3)  # past the TTL
    assert await cache.get("email", "same@example.com") is None
    await cache.put(contact)  # the marker expired too: cached again
    assert await cache.get("id", "c_9") == contact
    await cache.close()


async def test_the_memory_backend_keeps_no_expired_entry_against_its_bound() -> None:
    memory = MemoryCache()
    assert await memory.add("a", b"1", ttl=0.05)
    assert not await memory.add("a", b"2", ttl=0.05)  # SET NX
    await memory.multi_set([("b", b"")], ttl=0.05)  # a marker is a live value, read as a miss
    assert memory.peek("b") == b""
    assert await memory.get("b") is None
    await asyncio.sleep(0.1)
    assert len(memory) == 2
    assert memory.sweep() == 0
    assert await memory.get("a") is None
