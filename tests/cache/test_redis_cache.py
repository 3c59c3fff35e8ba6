"""The Redis cache backend against a real redis-server on loopback, through the real client."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from switchboard.client import NotFoundError, Switchboard
from switchboard.server.app.build import App
from switchboard.v1 import contacts_pb2
from tests.process import ServerProcess
from tests.redis_server import RedisServer

StartApp = Callable[..., Awaitable[App]]
RedisCacheSettings = Callable[..., dict[str, Any]]


def _client(app: App) -> Switchboard:
    return Switchboard(f"127.0.0.1:{app.port}", timeout=10.0)


async def _wait_cacheable(app: App) -> None:
    # Just after a write its keys hold an invalidation marker for `invalidation_hold_s`.
    await asyncio.sleep(app.settings.cache.invalidation_hold_s * 2)


async def test_read_after_write_is_fresh(
    start_app: StartApp, redis_server: RedisServer, redis_cache: RedisCacheSettings
) -> None:
    app = await start_app(cache=redis_cache(redis_server))
    async with _client(app) as sb:
        c = (await sb.contacts.upsert(email="fresh@example.com", first_name="A")).contact
        await _wait_cacheable(app)
        assert (await sb.contacts.get(email="fresh@example.com")).first_name == "A"  # miss
        assert (await sb.contacts.get(id=c.id)).first_name == "A"  # hit
        assert app.cache.stats().hits == 1
        await sb.contacts.upsert(id=c.id, first_name="B")
        assert (await sb.contacts.get(email="fresh@example.com")).first_name == "B"
        assert (await sb.contacts.get(id=c.id)).first_name == "B"
    assert app.cache.stats().backend == "redis"


async def test_two_replicas_sharing_redis_and_the_database_read_their_writes(
    start_app: StartApp,
    redis_server: RedisServer,
    redis_cache: RedisCacheSettings,
    tmp_path: Path,
) -> None:
    shared = {"cache": redis_cache(redis_server), "database": {"path": str(tmp_path / "r.db")}}
    replicas = [await start_app(**shared), await start_app(**shared)]
    clients = [_client(app) for app in replicas]
    try:
        c = (await clients[0].contacts.upsert(email="two@example.com", first_name="v1")).contact
        await _wait_cacheable(replicas[0])
        assert (await clients[1].contacts.get(id=c.id)).first_name == "v1"  # B fills Redis
        assert (await clients[0].contacts.get(id=c.id)).first_name == "v1"  # A hits it
        assert replicas[0].cache.stats().hits == 1
        for version in range(2, 6):
            writer, reader = clients[version % 2], clients[(version + 1) % 2]
            await writer.contacts.upsert(id=c.id, first_name=f"v{version}")
            got = await reader.contacts.get(email="two@example.com")
            assert (got.first_name, got.version) == (f"v{version}", version)
            assert (await reader.contacts.get(id=c.id)).first_name == f"v{version}"
        await clients[0].contacts.delete(id=c.id)
        with pytest.raises(NotFoundError):
            await clients[1].contacts.get(email="two@example.com")
    finally:
        for sb in clients:
            await sb.aclose()


async def test_values_are_protobuf_bytes_with_a_ttl(
    start_app: StartApp, redis_server: RedisServer, redis_cache: RedisCacheSettings
) -> None:
    settings = redis_cache(redis_server, ttl_s=0.5)
    app = await start_app(cache=settings)
    ns = settings["namespace"]
    async with _client(app) as sb:
        c = (await sb.contacts.upsert(email="raw@example.com", last_name="Lovelace")).contact
        await _wait_cacheable(app)
        await sb.contacts.get(id=c.id)
    with redis_server.client() as raw:
        for key in (f"{ns}:contact:id:{c.id}", f"{ns}:contact:email:raw@example.com"):
            stored = raw.get(key)
            assert isinstance(stored, bytes)
            assert contacts_pb2.Contact.FromString(stored) == c  # wire bytes, not pickle
            assert 0 < raw.pttl(key) <= 500
        # Expiry is Redis' own: poll (bounded) until the entry is gone.
        for _ in range(100):
            if not raw.exists(f"{ns}:contact:id:{c.id}"):
                break
            await asyncio.sleep(0.05)
        assert not raw.exists(f"{ns}:contact:id:{c.id}")
    misses = app.cache.stats().misses
    async with _client(app) as sb:
        assert (await sb.contacts.get(id=c.id)).last_name == "Lovelace"
    assert app.cache.stats().misses == misses + 1


async def test_reads_and_writes_succeed_while_redis_is_down(
    start_app: StartApp,
    own_redis: RedisServer,
    redis_cache: RedisCacheSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = await start_app(cache=redis_cache(own_redis, redis_timeout_s=0.2))
    async with _client(app) as sb:
        c = (await sb.contacts.upsert(email="down@example.com", first_name="up")).contact
        await _wait_cacheable(app)
        await sb.contacts.get(id=c.id)
        own_redis.stop()
        with caplog.at_level(logging.WARNING, logger="switchboard.server.cache.read_cache"):
            for i in range(3):
                await sb.contacts.upsert(id=c.id, first_name=f"down{i}")
                assert (await sb.contacts.get(id=c.id)).first_name == f"down{i}"
                assert (await sb.contacts.get(email="down@example.com")).version == i + 2
            other = (await sb.contacts.upsert(email="new@example.com")).contact
            assert (await sb.contacts.get(email="new@example.com")).id == other.id
    stats = app.cache.stats()
    assert stats.errors >= 1
    assert stats.pending_invalidations > 0  # kept for replay
    warnings = [r for r in caplog.records if "treated as a miss" in r.getMessage()]
    assert len(warnings) == 1  # rate-limited


async def test_invalidations_missed_during_an_outage_are_replayed(
    start_app: StartApp, own_redis: RedisServer, redis_cache: RedisCacheSettings
) -> None:
    settings = redis_cache(own_redis, redis_timeout_s=0.2)
    a, b = await start_app(cache=settings), await start_app(cache=settings)
    sa, sb = _client(a), _client(b)
    try:
        c = (await sa.contacts.upsert(email="replay@example.com", first_name="old")).contact
        await _wait_cacheable(a)
        assert (await sb.contacts.get(id=c.id)).first_name == "old"  # cached in Redis
        own_redis.pause()  # unreachable, but keeps its data (the stale entry)
        await sa.contacts.upsert(id=c.id, first_name="new")
        assert a.cache.stats().pending_invalidations > 0
        assert (await sa.contacts.get(id=c.id)).first_name == "new"  # A bypasses the cache
        own_redis.resume()
        for _ in range(100):  # the replay runs every second; bounded wait
            if not a.cache.stats().pending_invalidations:
                break
            await asyncio.sleep(0.05)
        assert a.cache.stats().pending_invalidations == 0
        assert (await sb.contacts.get(id=c.id)).first_name == "new"
        assert (await sb.contacts.get(email="replay@example.com")).first_name == "new"
    finally:
        await sa.aclose()
        await sb.aclose()


async def test_workers_of_one_server_share_redis(
    redis_server: RedisServer, redis_cache: RedisCacheSettings, tmp_path: Path
) -> None:
    settings = redis_cache(redis_server)
    env = {
        "SWITCHBOARD_CACHE__BACKEND": "redis",
        "SWITCHBOARD_CACHE__REDIS_URL": settings["redis_url"],
        "SWITCHBOARD_CACHE__NAMESPACE": settings["namespace"],
        "SWITCHBOARD_CACHE__INVALIDATION_HOLD_S": "0.05",
    }
    server = ServerProcess(tmp_path / "workers.db", extra_env=env, workers=2)
    options = (("grpc.use_local_subchannel_pool", 1),)  # own connections: both workers serve
    clients = [Switchboard(f"127.0.0.1:{server.port}", options=options) for _ in range(8)]
    raw = redis_server.client()
    try:
        c = (await clients[0].contacts.upsert(email="w@example.com", first_name="v1")).contact
        for version in range(2, 5):
            await asyncio.sleep(0.1)  # past the hold: the reads below fill Redis
            for sb in clients:
                assert (await sb.contacts.get(id=c.id)).version == version - 1
            stored = raw.get(f"{settings['namespace']}:contact:id:{c.id}")
            assert isinstance(stored, bytes)
            assert contacts_pb2.Contact.FromString(stored).version == version - 1
            await clients[version].contacts.upsert(id=c.id, first_name=f"v{version}")
            for sb in clients:
                assert (await sb.contacts.get(id=c.id)).first_name == f"v{version}"
    finally:
        for sb in clients:
            await sb.aclose()
        raw.close()
        server.kill()


async def test_a_write_while_redis_is_skipped_is_replayed_without_further_calls(
    start_app: StartApp, own_redis: RedisServer, redis_cache: RedisCacheSettings
) -> None:
    settings = redis_cache(own_redis, redis_timeout_s=0.2)
    a, b = await start_app(cache=settings), await start_app(cache=settings)
    sa, sb = _client(a), _client(b)
    try:
        c = (await sa.contacts.upsert(email="skip@example.com", first_name="old")).contact
        await _wait_cacheable(a)
        assert (await sb.contacts.get(id=c.id)).first_name == "old"  # cached in Redis
        own_redis.pause()
        with pytest.raises(NotFoundError):  # this lookup times out: A skips Redis for a while
            await sa.contacts.get(email="nobody@example.com")
        await sa.contacts.upsert(id=c.id, first_name="new")  # invalidation not even tried
        own_redis.resume()
        for _ in range(100):  # no more calls to A: its replay task alone must catch up
            if not a.cache.stats().pending_invalidations:
                break
            await asyncio.sleep(0.05)
        assert (await sb.contacts.get(id=c.id)).first_name == "new"
    finally:
        await sa.aclose()
        await sb.aclose()
