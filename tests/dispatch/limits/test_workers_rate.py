"""Acceptance: a connector's rate limit holds across `switchboard serve --workers 2`.

A local HTTP peer stands for the tool and notes when each webhook call arrives. With limits
kept per process (`local`, the behaviour before shared limits) two workers call it about
twice as often as configured; shared through the store or Redis, within 10 % of the rate.
"""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from switchboard.client import Switchboard
from tests.process import ServerProcess
from tests.redis_server import RedisServer

RATE = 20.0
CALLS = 80  # four seconds' worth at RATE
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


class CountingPeer:
    """An HTTP server on 127.0.0.1:0 that notes the arrival time of every POST."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        arrivals = self.arrivals
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                with lock:
                    arrivals.append(time.monotonic())
                body = b'{"ok":true}'
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def peer() -> Iterator[CountingPeer]:
    served = CountingPeer()
    yield served
    served.close()


def _config(path: Path, peer: CountingPeer, backend: str, redis_url: str) -> Path:
    redis_line = f'redis_url = "{redis_url}"' if redis_url else ""
    path.write_text(
        f"""
[dispatch]
poll_interval_s = 0.05

[connector_limits]
backend = "{backend}"
{redis_line}

[connectors.hook]
kind = "webhook"
rate_per_s = {RATE}
rate_burst = 1
max_concurrency = 8
options = {{ url = "{peer.url}", secret = "{SECRET}" }}

[triggers.ping]
steps = [{{ connector = "hook", action = "webhook.post" }}]
"""
    )
    return path


async def _drive(port: int, peer: CountingPeer) -> float:
    """Queue CALLS runs through several connections (both workers), wait for every call;
    return the calls per second between the first and the last call."""
    options = (("grpc.use_local_subchannel_pool", 1),)
    clients = [Switchboard(f"127.0.0.1:{port}", options=options) for _ in range(8)]
    try:
        await asyncio.gather(
            *(
                clients[i % len(clients)].campaigns.trigger("ping", email=f"r{i}@example.com")
                for i in range(CALLS)
            )
        )
    finally:
        for sb in clients:
            await sb.aclose()
    deadline = time.monotonic() + 4 * CALLS / RATE
    # The peer's threads append; polling the list is the simplest wait.
    while len(peer.arrivals) < CALLS and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    assert len(peer.arrivals) == CALLS
    arrivals = sorted(peer.arrivals)
    return (len(arrivals) - 1) / (arrivals[-1] - arrivals[0])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["local", "store", "redis"])
async def test_rate_limit_across_two_workers(
    backend: str, peer: CountingPeer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    redis_url = ""
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("limits_redis")
        redis_url = server.url
    config = _config(tmp_path / "rate.toml", peer, backend, redis_url)
    process = ServerProcess(tmp_path / "rate.db", extra_args=("--config", str(config)), workers=2)
    try:
        rate = await _drive(process.port, peer)
    finally:
        process.kill()
    print(f"{backend}: {rate:.1f} calls/s for rate_per_s = {RATE:g} with 2 workers")
    if backend == "local":
        assert rate > 1.1 * RATE  # each worker its own bucket: the limit does not hold
    else:
        assert 0.9 * RATE <= rate <= 1.1 * RATE
