"""Shared fixtures: a real server on 127.0.0.1:0 with the embedded defaults and a private DB,
and the store under test on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from switchboard.client import Switchboard
from switchboard.server.app.build import App, build_app
from switchboard.server.config.sections import DatabaseSettings
from switchboard.server.config.settings import Settings, defaults, settings_for_tests
from switchboard.server.store.select import AnyStore, build_store
from tests.postgres_server import PostgresServer, find_postgres

FAST_DISPATCH = {
    **defaults()["dispatch"],
    "poll_interval_s": 0.05,
    "base_backoff_s": 0.01,
    "max_backoff_s": 0.05,
}


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Settings with a private database, an ephemeral port and a fast dispatcher."""

    def make(**overrides: Any) -> Settings:
        overrides.setdefault("dispatch", FAST_DISPATCH)
        # A short hold keeps tests that read what they just wrote through the cache quick.
        overrides.setdefault("cache", {"invalidation_hold_s": 0.05})
        return settings_for_tests(tmp_path / "switchboard.db", **overrides)

    return make


@pytest.fixture
async def start_app(
    make_settings: Callable[..., Settings],
) -> AsyncIterator[Callable[..., Awaitable[App]]]:
    """Start servers with setting overrides; all are stopped at teardown."""
    started: list[App] = []

    async def start(**overrides: Any) -> App:
        built = await build_app(make_settings(**overrides))
        await built.start()
        started.append(built)
        return built

    yield start
    for built in started:
        await built.stop(grace_s=1.0)


@pytest.fixture
async def app(start_app: Callable[..., Awaitable[App]]) -> App:
    """A started server with the default configuration."""
    return await start_app()


@pytest.fixture
async def sb(app: App) -> AsyncIterator[Switchboard]:
    """The real client, connected to `app`."""
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=10.0) as client:
        yield client


@pytest.fixture
async def channel(app: App) -> AsyncIterator[grpc.aio.Channel]:
    """A raw channel to `app`, for tests that speak protobuf directly."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as ch:
        yield ch


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (tests keep apart by database); skips, saying
    why, only when the Debian package is missing and cannot be installed."""
    bindir, why = find_postgres()
    if bindir is None:
        pytest.skip(why)
    server = PostgresServer(bindir)
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres: PostgresServer) -> str:
    """The URL of a new, empty database on the session's PostgreSQL server."""
    return postgres.create_database()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        # A real server process: slow, like every test that spawns one.
        pytest.param("postgres", id="postgres", marks=pytest.mark.slow),
    ]
)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """`database` settings for each store: an SQLite file, or a fresh PostgreSQL database."""
    values: dict[str, Any] = {"path": str(tmp_path / "store.db"), "busy_timeout_ms": 10_000}
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres")
        values["url"] = server.create_database()
    return values


@pytest.fixture
async def any_store(database: dict[str, Any]) -> AsyncIterator[AnyStore]:
    """An open store of each kind (the same contract tests run against both)."""
    store = build_store(DatabaseSettings(**database))
    await store.open()
    yield store
    await store.close()
