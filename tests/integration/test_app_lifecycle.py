"""Building and stopping the app: nothing stays open after a failed start or a failing close."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from switchboard.server.app.build import StartupError, build_app
from switchboard.server.cache.read_cache import ReadCache
from switchboard.server.config.settings import Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _can_bind(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _open(path: Path) -> bool:
    return any(f.path.startswith(str(path)) for f in psutil.Process().open_files())


async def test_a_start_that_fails_late_closes_what_it_opened(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    metrics = _free_port()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        settings = make_settings(
            telemetry={"exporter": "prometheus", "prometheus_listen": f"127.0.0.1:{metrics}"},
            connect={"listen": f"127.0.0.1:{taken.getsockname()[1]}"},
        )
        with pytest.raises(StartupError, match=r"connect\.listen"):
            await build_app(settings)
    finally:
        taken.close()
    # The metrics page, the database and its threads were all closed again.
    assert _can_bind(metrics), "the Prometheus port stayed bound after a failed start"
    assert not _open(tmp_path / "switchboard.db")


async def test_stop_closes_the_store_even_when_an_earlier_close_fails(
    make_settings: Callable[..., Settings],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken_close(self: ReadCache) -> None:
        raise RuntimeError("cache backend went away")

    monkeypatch.setattr(ReadCache, "close", broken_close)
    app = await build_app(make_settings())
    await app.start()
    assert _open(tmp_path / "switchboard.db")
    with caplog.at_level(logging.ERROR):
        await app.stop(grace_s=0.5)
    assert not _open(tmp_path / "switchboard.db")
    assert any("stopping the cache failed" in r.getMessage() for r in caplog.records)
