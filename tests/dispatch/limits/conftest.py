"""Each shared backend on real parts: a SQLite store in a temp file, a real redis-server."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from switchboard.server.config.sections import DatabaseSettings
from switchboard.server.dispatch.limits.base import LimitSpec
from switchboard.server.dispatch.limits.redis import RedisLimits, client_for
from switchboard.server.dispatch.limits.store import StoreLimits
from switchboard.server.store.sqlite.store import SqliteStore
from tests.redis_server import RedisServer, find_redis_server

Shared = StoreLimits | RedisLimits
MakeLimits = Callable[..., Awaitable[Shared]]
_names = itertools.count()


def spec(**overrides: Any) -> LimitSpec:
    """A connector with no limits but those given."""
    values: dict[str, Any] = {
        "rate_per_s": None,
        "burst": 1,
        "max_concurrency": 100,
        "breaker_failures": 5,
        "breaker_cooldown_s": 30.0,
    }
    return LimitSpec(**{**values, **overrides})


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """Path of redis-server; skips the dependent tests, with the reason, when unavailable."""
    binary, why = find_redis_server()
    if binary is None:
        pytest.skip(why)
    return binary


@pytest.fixture(scope="session")
def limits_redis(
    redis_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer]:
    """One server for the limits tests; each test uses its own namespace."""
    server = RedisServer(redis_binary, tmp_path_factory.mktemp("limits-redis"))
    yield server
    server.stop()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An open SQLite store in a temp file."""
    opened = SqliteStore(DatabaseSettings(path=str(tmp_path / "limits.db")))
    await opened.open()
    yield opened
    await opened.close()


@pytest.fixture(params=["store", "redis"])
async def make_limits(
    request: pytest.FixtureRequest, store: SqliteStore
) -> AsyncIterator[MakeLimits]:
    """Builds processes' views of one shared backend: call it once per holder (process)."""
    made: list[Shared] = []
    namespace = f"t{next(_names)}-{time.time_ns()}"

    async def make(specs: dict[str, LimitSpec], holder: str = "a", lease_s: float = 30.0) -> Shared:
        limits: Shared
        if request.param == "store":
            limits = StoreLimits(store, specs, holder, lease_s)
        else:
            server: RedisServer = request.getfixturevalue("limits_redis")
            client = client_for(server.url, 2.0)
            limits = RedisLimits(client, specs, holder, lease_s, namespace, time.monotonic)
            await limits.sync_clock()
        made.append(limits)
        return limits

    yield make
    for limits in made:
        await limits.aclose()
