"""`switchboard serve --local` creates, stores (0600) and prints a development key that works;
auth is on by default; `new-api-key` prints a key and the lines that accept it."""

from __future__ import annotations

import logging
import re
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from switchboard.client import Switchboard, SwitchboardError
from switchboard.client.cli import main
from switchboard.server.app.build import App
from switchboard.server.auth.api_keys import hash_key
from switchboard.server.auth.local_key import ensure_local_key, local_key_path
from switchboard.server.config.security import JwtSettings
from switchboard.server.config.settings import Settings
from tests.process import ServerProcess

_KEY_LINE = re.compile(r"-H 'authorization: Bearer (sb_[A-Za-z0-9_-]+)'")


def _printed_key(proc: ServerProcess) -> str:
    assert proc.proc.stderr is not None
    line = proc.proc.stderr.readline() + proc.proc.stderr.readline()
    match = _KEY_LINE.search(line)
    assert match, line
    return match.group(1)


async def _status(port: int, key: str | None) -> grpc.StatusCode:
    async with Switchboard(f"127.0.0.1:{port}", api_key=key, timeout=5.0) as sb:
        try:
            await sb.connectors.list()
        except SwitchboardError as exc:
            return exc.code
    return grpc.StatusCode.OK


async def test_local_mode_prints_a_working_key(tmp_path: Path) -> None:
    db = tmp_path / "sb.db"
    proc = ServerProcess(db, {"SWITCHBOARD_AUTH__ENABLED": "true"}, ("--local",))
    try:
        key = _printed_key(proc)
        codes = (await _status(proc.port, key), await _status(proc.port, None))
    finally:
        proc.terminate()
    mode = stat.S_IMODE(local_key_path(str(db)).stat().st_mode)
    assert (codes, mode) == ((grpc.StatusCode.OK, grpc.StatusCode.UNAUTHENTICATED), 0o600)


def test_local_key_is_reused(tmp_path: Path) -> None:
    db = str(tmp_path / "sb.db")
    assert ensure_local_key(db) == ensure_local_key(db)


def test_auth_is_on_by_default() -> None:
    assert Settings().auth.enabled is True


@pytest.mark.parametrize(
    "algorithms",
    [pytest.param(["none"], id="none"), pytest.param(["HS256"], id="hmac")],
)
def test_unsafe_jwt_algorithms_are_refused_in_settings(algorithms: list[str]) -> None:
    with pytest.raises(ValidationError):
        JwtSettings(algorithms=algorithms)


def test_new_api_key_prints_matching_hash() -> None:
    result = CliRunner().invoke(main, ["new-api-key", "--caller", "web", "--scope", "leads:read"])
    key = re.search(r"(sb_\S+)", result.output)
    digest = re.search(r'key_sha256 = \["([0-9a-f]{64})"\]', result.output)
    pair = (hash_key(key.group(1)) if key else None, digest.group(1) if digest else "")
    assert pair[0] == pair[1]


async def test_auth_without_any_caller_warns(
    start_app: Callable[..., Awaitable[App]], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="switchboard.server.app.build"):
        await start_app(auth={"enabled": True})
    assert any("every call" in r.getMessage() for r in caplog.records)
