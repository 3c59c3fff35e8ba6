"""Redis for the cache tests: found on PATH or installed (root), else every test skips."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from switchboard.server.config.settings import defaults
from tests.redis_server import RedisServer, find_redis_server


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """Path of redis-server; skips the dependent tests, with the reason, when unavailable."""
    binary, why = find_redis_server()
    if binary is None:
        pytest.skip(why)
    return binary


@pytest.fixture(scope="session")
def redis_server(
    redis_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisServer]:
    """One server shared by the session; tests keep apart by namespace."""
    server = RedisServer(redis_binary, tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def own_redis(redis_binary: str, tmp_path: Path) -> Iterator[RedisServer]:
    """A private server, for tests that stop or freeze it."""
    server = RedisServer(redis_binary, tmp_path / "redis")
    yield server
    server.stop()


@pytest.fixture
def redis_cache(request: pytest.FixtureRequest) -> Callable[..., dict[str, Any]]:
    """`cache` settings for the Redis backend, namespaced by the test's name."""

    def make(server: RedisServer, **overrides: Any) -> dict[str, Any]:
        return {
            **defaults()["cache"],
            "backend": "redis",
            "redis_url": server.url,
            "namespace": f"t-{request.node.name}"[:60].replace("[", "-").replace("]", ""),
            "invalidation_hold_s": 0.05,
            **overrides,
        }

    return make
