"""Per-caller rate limits: each API-key caller's own rate, changed while serving, shared in
Redis by every process that serves the callers. All through real gRPC calls."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from switchboard.client import ResourceExhaustedError, Switchboard
from switchboard.server.app.build import App
from switchboard.server.auth.api_keys import hash_key
from switchboard.server.config.settings import Settings
from tests.redis_server import RedisServer, find_redis_server

StartApp = Callable[..., Awaitable[App]]
LIST_CONNECTORS = "/switchboard.v1.Connectors/ListConnectors"
KEYS = {"shop": "sb_shop-key-0123456789", "crm": "sb_crm-key-0123456789"}
CALLERS = {
    name: {"scopes": ["connectors:read"], "key_sha256": [hash_key(key)]}
    for name, key in KEYS.items()
}
AUTH = {"enabled": True, "callers": CALLERS}
SLOW = 0.001  # a refill this slow adds no token during a test: exactly `burst` calls pass


async def _codes(port: int, caller: str, calls: int) -> list[grpc.StatusCode]:
    codes, _ = await _calls(port, caller, calls)
    return codes


async def _calls(port: int, caller: str, calls: int) -> tuple[list[grpc.StatusCode], str]:
    codes, message = [], ""
    metadata = (("authorization", f"Bearer {KEYS[caller]}"),)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        for _ in range(calls):
            try:
                await channel.unary_unary(LIST_CONNECTORS)(b"", timeout=5.0, metadata=metadata)
                codes.append(grpc.StatusCode.OK)
            except grpc.aio.AioRpcError as exc:
                codes.append(exc.code())
                message = exc.details() or ""
    return codes, message


OK, OUT = grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_a_caller_gets_its_own_limit_and_others_the_default(start_app: StartApp) -> None:
    limits = {"rate_per_s": SLOW, "rate_burst": 2, "callers": {"shop": {"rate_per_s": 300}}}
    app = await start_app(auth=AUTH, limits=limits)
    assert await _codes(app.port, "shop", 5) == [OK] * 5
    assert await _codes(app.port, "crm", 3) == [OK, OK, OUT]


async def test_the_refusal_names_the_callers_limit_and_when_to_retry(
    start_app: StartApp,
) -> None:
    limits = {"callers": {"shop": {"rate_per_s": 2, "rate_burst": 1}}}
    app = await start_app(auth=AUTH, limits=limits)
    codes, message = await _calls(app.port, "shop", 2)
    assert codes == [OK, OUT]
    assert message.startswith("rate limit: 2 calls/s for caller 'shop' (burst 1); retry in 0.")


async def test_the_refusal_carries_the_wait_as_retry_info(start_app: StartApp) -> None:
    limits = {"callers": {"shop": {"rate_per_s": 2, "rate_burst": 1}}}
    app = await start_app(auth=AUTH, limits=limits)
    async with Switchboard(f"127.0.0.1:{app.port}", api_key=KEYS["shop"], retries=0) as sb:
        await sb.connectors.list()
        with pytest.raises(ResourceExhaustedError) as info:
            await sb.connectors.list()
    # One token at 2/s: the bucket is full again within half a second.
    assert info.value.retry_after is not None
    assert 0 < info.value.retry_after <= 0.5


async def test_a_reload_changes_a_callers_limit_while_serving(
    start_app: StartApp, make_settings: Callable[..., Settings]
) -> None:
    limits: dict[str, Any] = {"callers": {"shop": {"rate_per_s": SLOW, "rate_burst": 1}}}
    app = await start_app(auth=AUTH, limits=limits)
    before = await _codes(app.port, "shop", 2)
    app.reload(make_settings(auth=AUTH, limits={"callers": {"shop": {"rate_per_s": 500}}}))
    await asyncio.sleep(0.05)  # the bucket keeps its tokens and refills at the new rate
    after = await _codes(app.port, "shop", 4)
    assert (before, after) == ([OK, OUT], [OK] * 4)


async def test_a_caller_without_a_default_limit_can_still_have_its_own(
    start_app: StartApp,
) -> None:
    limits = {"rate_per_s": 0, "callers": {"crm": {"rate_per_s": SLOW, "rate_burst": 1}}}
    app = await start_app(auth=AUTH, limits=limits)
    assert await _codes(app.port, "crm", 2) == [OK, OUT]
    assert await _codes(app.port, "shop", 3) == [OK] * 3


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    binary, why = find_redis_server()
    if binary is None:
        pytest.skip(why)
    server = RedisServer(binary, tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


async def test_limits_in_redis_hold_across_servers(
    start_app: StartApp, redis_server: RedisServer, tmp_path: Path
) -> None:
    shared = {
        "rate_per_s": SLOW,
        "rate_burst": 3,
        "backend": "redis",
    }
    namespace = {"backend": "memory", "namespace": f"t{tmp_path.name}"[:60]}
    limits_redis = {"redis_url": redis_server.url}
    one = await start_app(auth=AUTH, limits=shared, cache=namespace, connector_limits=limits_redis)
    two = await start_app(auth=AUTH, limits=shared, cache=namespace, connector_limits=limits_redis)
    codes = await _codes(one.port, "crm", 2) + await _codes(two.port, "crm", 2)
    assert codes == [OK, OK, OK, OUT]
