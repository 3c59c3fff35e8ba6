"""SIGHUP reloads the per-caller rate limits of every worker, without a restart."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import grpc
import pytest

from switchboard.server.auth.api_keys import hash_key
from tests.process import ServerProcess

pytestmark = pytest.mark.slow

KEY = "sb_reload-key-0123456789"
LIST_CONNECTORS = "/switchboard.v1.Connectors/ListConnectors"


def _config(rate: float, burst: int) -> str:
    return f"""
[auth]
enabled = true
[auth.callers.shop]
scopes = ["connectors:read"]
key_sha256 = ["{hash_key(KEY)}"]

[limits.callers.shop]
rate_per_s = {rate}
rate_burst = {burst}
"""


async def _refused(port: int, calls: int) -> int:
    """How many of `calls` calls, one connection each (so both workers see some), were
    refused for the rate."""
    codes = []
    for _ in range(calls):
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", options=(("grpc.use_local_subchannel_pool", 1),)
        ) as channel:
            try:
                await channel.unary_unary(LIST_CONNECTORS)(
                    b"", timeout=5.0, metadata=(("authorization", f"Bearer {KEY}"),)
                )
            except grpc.aio.AioRpcError as exc:
                codes.append(exc.code())
    assert set(codes) <= {grpc.StatusCode.RESOURCE_EXHAUSTED}, codes
    return len(codes)


async def test_sighup_applies_a_new_caller_limit_in_every_worker(tmp_path: Path) -> None:
    config = tmp_path / "switchboard.toml"
    config.write_text(_config(0.001, 1))
    env = {"SWITCHBOARD_AUTH__ENABLED": "true", "SWITCHBOARD_LIMITS__RATE_PER_S": "100"}
    server = ServerProcess(tmp_path / "reload.db", env, ("--config", str(config)), workers=2)
    try:
        before = await _refused(server.port, 10)  # at most one call per worker passes
        config.write_text(_config(1000, 2000))
        server.proc.send_signal(signal.SIGHUP)
        await asyncio.sleep(1.0)
        after = await _refused(server.port, 10)
        alive = server.proc.poll() is None
    finally:
        server.kill()
    assert before >= 8
    assert after == 0
    assert alive
