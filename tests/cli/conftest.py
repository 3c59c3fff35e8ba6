"""A live server for the CLI tests, and a runner that invokes `switchboard` against it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from switchboard.client.cli import main
from tests.tooling.live import CLIENT_HEADERS, live_server

Invoke = Callable[..., Result]


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The database of the module's server (its local development key sits beside it)."""
    return tmp_path_factory.mktemp("cli") / "switchboard.db"


@pytest.fixture(scope="module")
def target(db_path: Path) -> Iterator[str]:
    """host:port of a `switchboard serve` child process shared by a test module."""
    with live_server(db_path) as port:
        yield f"127.0.0.1:{port}"


@pytest.fixture
def invoke(target: str) -> Invoke:
    """Runs `switchboard ARGS…` in process against `target`; returns click's result."""
    env = {"SWITCHBOARD_TARGET": target}
    # When the server requires an API key, CLIENT_HEADERS carries it; the CLI sends it.
    for header in CLIENT_HEADERS:
        name, _, value = header.partition(":")
        if name.strip().lower() == "authorization":
            env["SWITCHBOARD_API_KEY"] = value.strip().removeprefix("Bearer ").strip()

    def run(*args: str | Path, input: str | None = None) -> Result:
        return CliRunner(env=env).invoke(main, [str(a) for a in args], input=input)

    return run
