"""The Prometheus exporter with several worker processes: one page, every worker's series."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from switchboard.client import Switchboard
from tests.process import ServerProcess

WORKERS = 3
CALLS = 60
CHANNELS = 12  # connections of their own, so that SO_REUSEPORT spreads them over workers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        body: bytes = resp.read()
        return body.decode()


@pytest.fixture
def metrics_port() -> int:
    return _free_port()


@pytest.fixture
def three_workers(tmp_path: Path, metrics_port: int) -> Iterator[ServerProcess]:
    env = {
        "SWITCHBOARD_TELEMETRY__EXPORTER": "prometheus",
        "SWITCHBOARD_TELEMETRY__PROMETHEUS_LISTEN": f"127.0.0.1:{metrics_port}",
    }
    server = ServerProcess(tmp_path / "prom.db", env, workers=WORKERS)
    try:
        yield server
        code, stderr = server.terminate()  # gracefully: the supervisor removes its socket dir
        assert code == 0, stderr
    finally:
        server.kill()


async def _calls(port: int) -> None:
    options = (("grpc.use_local_subchannel_pool", 1),)
    clients = [Switchboard(f"127.0.0.1:{port}", options=options) for _ in range(CHANNELS)]
    try:
        await asyncio.gather(
            *(
                clients[i % CHANNELS].contacts.upsert(email=f"prom{i}@example.com")
                for i in range(CALLS)
            )
        )
    finally:
        for sb in clients:
            await sb.aclose()


@pytest.mark.slow
async def test_one_page_holds_every_workers_series(
    three_workers: ServerProcess, metrics_port: int
) -> None:
    await _calls(three_workers.port)
    page = await asyncio.to_thread(_scrape, metrics_port)
    families = {f.name: f for f in text_string_to_metric_families(page)}

    # Every worker answers for itself, with its own process series.
    up = {s.labels["worker"]: s.value for s in families["switchboard_worker_up"].samples}
    assert up == {str(i): 1.0 for i in range(WORKERS)}
    cpu = families["process_cpu_seconds"].samples
    assert {s.labels["worker"] for s in cpu} == {str(i) for i in range(WORKERS)}

    # The calls made, each counted once, by whichever worker served it (one page read three
    # times would count them three times).
    upserts = [
        s
        for s in families["rpc_server_call_duration_seconds"].samples
        if s.name == "rpc_server_call_duration_seconds_count"
        and s.labels.get("rpc_method") == "switchboard.v1.ContactSync/UpsertContact"
    ]
    assert sum(s.value for s in upserts) == CALLS
    assert len({s.labels["worker"] for s in upserts}) >= 2  # the calls were spread


@pytest.mark.slow
async def test_a_restarted_worker_is_back_on_the_page(
    three_workers: ServerProcess, metrics_port: int
) -> None:
    victim = psutil.Process(three_workers.proc.pid).children()[0]
    os.kill(victim.pid, signal.SIGKILL)
    await asyncio.to_thread(victim.wait, 10)

    async def up() -> dict[str, float]:
        page = await asyncio.to_thread(_scrape, metrics_port)
        families = {f.name: f for f in text_string_to_metric_families(page)}
        return {s.labels["worker"]: s.value for s in families["switchboard_worker_up"].samples}

    seen_down = False
    for _ in range(100):  # the supervisor restarts it after about a second
        state = await up()
        seen_down |= 0.0 in state.values()
        if seen_down and all(v == 1.0 for v in state.values()):
            break
        await asyncio.sleep(0.05)
    assert seen_down
    assert state == {str(i): 1.0 for i in range(WORKERS)}
