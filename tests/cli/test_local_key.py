"""Where the CLI looks for the development key of a local server (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchboard.client.cli.local_key import find_local_key, is_local, key_path
from switchboard.server.auth.local_key import ensure_local_key, local_key_path


@pytest.mark.parametrize(
    ("target", "local"),
    [
        pytest.param("localhost:50051", True, id="localhost"),
        pytest.param("127.0.0.1:50051", True, id="ipv4-loopback"),
        pytest.param("[::1]:50051", True, id="ipv6-loopback"),
        pytest.param("switchboard.internal:50051", False, id="remote"),
        pytest.param("10.0.0.7:50051", False, id="private-address"),
    ],
)
def test_is_local(target: str, local: bool) -> None:
    assert is_local(target) is local


def test_the_client_looks_where_the_server_writes(tmp_path: Path) -> None:
    database = tmp_path / "data" / "switchboard.db"
    key = ensure_local_key(str(database))
    env = {"SWITCHBOARD_DATABASE__PATH": str(database)}

    assert key_path(env) == local_key_path(str(database))
    assert find_local_key("localhost:50051", env) == (key, key_path(env))
    assert find_local_key("remote.example.com:50051", env) is None


def test_the_default_is_the_servers_default_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    key = ensure_local_key("data/switchboard.db")

    assert find_local_key("127.0.0.1:50051", {}) == (key, Path("data/switchboard.db.local-api-key"))


def test_a_file_without_a_key_is_ignored(tmp_path: Path) -> None:
    database = tmp_path / "switchboard.db"
    local_key_path(str(database)).write_text("not a key\n")

    assert find_local_key("localhost:1", {"SWITCHBOARD_DATABASE__PATH": str(database)}) is None
