"""Process roles: `serve --role api` accepts, `serve --role dispatch` delivers, on one store.

Real processes on one SQLite file; the steps go to a webhook peer in this test process that
records each request by its step key. The dispatcher's idle poll is set far above what the
tests allow for a delivery, so a delivery in time proves the api process's nudge woke it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from pathlib import Path

import grpc
import psutil
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchboard.client import Switchboard
from switchboard.v1 import campaigns_pb2, campaigns_pb2_grpc, contacts_pb2
from tests.connectors.http_peer import HttpPeer, Reply
from tests.process import ServerProcess

pytestmark = pytest.mark.slow

STEPS = 2
SECRET = "whsec_" + base64.b64encode(b"r" * 32).decode()
POLL_S = 20.0  # idle poll: far longer than any delivery below may take
DISPATCH_READY = r"gRPC health on 127\.0\.0\.1:(\d+)"


def _env(url: str) -> dict[str, str]:
    hook = {"kind": "webhook", "timeout_s": 2.0, "options": {"url": url, "secret": SECRET}}
    steps = [{"connector": "hook", "action": "webhook.post"}] * STEPS
    return {
        "SWITCHBOARD_CONNECTORS": json.dumps({"hook": hook}),
        "SWITCHBOARD_TRIGGERS": json.dumps({"ping": {"steps": steps}}),
        "SWITCHBOARD_DISPATCH__POLL_INTERVAL_S": str(POLL_S),
        "SWITCHBOARD_DISPATCH__LEASE_S": "3",
    }


def _api(db: Path, url: str) -> ServerProcess:
    return ServerProcess(db, _env(url), ("--role", "api"))


def _dispatcher(db: Path, url: str) -> ServerProcess:
    return ServerProcess(db, _env(url), ("--role", "dispatch"), ready=DISPATCH_READY)


async def _trigger(port: int, count: int, *, wait: bool = False) -> list[campaigns_pb2.Run]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = campaigns_pb2_grpc.CampaignTriggersStub(ch)

        async def one(i: int) -> campaigns_pb2.Run:
            req = campaigns_pb2.TriggerCampaignRequest(
                event="ping",
                contact=contacts_pb2.Contact(email=f"role{i}-{time.monotonic_ns()}@example.com"),
                wait_for_completion=wait,
            )
            return (await stub.TriggerCampaign(req, timeout=10)).run

        return list(await asyncio.gather(*(one(i) for i in range(count))))


async def _received(peer: HttpPeer, n: int, within_s: float) -> float:
    """Seconds until the peer holds `n` requests; fails after `within_s`."""
    start = time.monotonic()
    async with asyncio.timeout(within_s):
        while len(peer.received) < n:  # noqa: ASYNC110 - the peer runs on another thread
            await asyncio.sleep(0.005)
    return time.monotonic() - start


def _keys(peer: HttpPeer) -> set[str]:
    return {r.headers["webhook-id"] for r in peer.received}


async def test_api_and_dispatch_processes_deliver_every_step_at_once(tmp_path: Path) -> None:
    db = tmp_path / "roles.db"
    with HttpPeer() as peer:
        peer.script.extend(Reply(200) for _ in range(1000))
        api = _api(db, peer.url)
        dispatcher = _dispatcher(db, peer.url)
        try:
            await asyncio.sleep(1.5)  # the api process lists the dispatcher's socket
            runs = await _trigger(api.port, 20)
            took = await _received(peer, 20 * STEPS, within_s=POLL_S / 2)
            async with grpc.aio.insecure_channel(f"127.0.0.1:{dispatcher.port}") as ch:
                health = await health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
        finally:
            api.kill()
            dispatcher.kill()
    assert _keys(peer) == {f"{r.id}:{i}" for r in runs for i in range(STEPS)}
    assert took < POLL_S / 2  # woken by the nudge, not by the poll
    assert health.status == health_pb2.HealthCheckResponse.SERVING


async def test_a_dispatch_process_serves_no_switchboard_service(tmp_path: Path) -> None:
    with HttpPeer() as peer:
        dispatcher = _dispatcher(tmp_path / "roles.db", peer.url)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await _trigger(dispatcher.port, 1)
        finally:
            dispatcher.kill()
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_a_waiting_trigger_in_the_api_process_hears_the_dispatchers_end(
    tmp_path: Path,
) -> None:
    db = tmp_path / "roles.db"
    with HttpPeer() as peer:
        peer.script.extend(Reply(200) for _ in range(100))
        api = _api(db, peer.url)
        dispatcher = _dispatcher(db, peer.url)
        try:
            await asyncio.sleep(1.5)
            start = time.monotonic()
            (run,) = await _trigger(api.port, 1, wait=True)
            took = time.monotonic() - start
        finally:
            api.kill()
            dispatcher.kill()
    assert run.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
    assert took < 0.9  # the api's own watch poll is 1 s: the run's end was announced


async def test_steps_queued_while_the_dispatcher_is_down_are_delivered_after_restart(
    tmp_path: Path,
) -> None:
    db = tmp_path / "roles.db"
    with HttpPeer() as peer:
        peer.script.extend(Reply(200) for _ in range(1000))
        api = _api(db, peer.url)
        dispatcher = _dispatcher(db, peer.url)
        try:
            await asyncio.sleep(1.5)
            first = await _trigger(api.port, 5)
            await _received(peer, 5 * STEPS, within_s=POLL_S / 2)
            dispatcher.kill()
            queued = await _trigger(api.port, 10)  # accepted with nobody delivering
            await asyncio.sleep(0.5)
            delivered_while_down = len(peer.received) - 5 * STEPS
            dispatcher = _dispatcher(db, peer.url)
            expected = {f"{r.id}:{i}" for r in first + queued for i in range(STEPS)}
            # Unique keys, not requests: a step in flight at the kill may be sent again
            # (at least once, same key) when its lease runs out.
            async with asyncio.timeout(POLL_S / 2):
                while _keys(peer) != expected:  # noqa: ASYNC110 - the peer runs on a thread
                    await asyncio.sleep(0.01)
        finally:
            api.kill()
            dispatcher.kill()
    assert delivered_while_down == 0
    assert _keys(peer) == expected


async def test_workers_with_a_dispatch_process_split_serving_from_delivery(
    tmp_path: Path,
) -> None:
    with HttpPeer() as peer:
        peer.script.extend(Reply(200) for _ in range(1000))
        env = {**_env(peer.url), "SWITCHBOARD_DISPATCH__PROCESSES": "1"}
        server = ServerProcess(tmp_path / "roles.db", env, workers=3)
        try:
            workers = psutil.Process(server.proc.pid).children()
            listening = {
                w.pid
                for w in workers
                for c in w.net_connections("tcp")
                if c.status == psutil.CONN_LISTEN and c.laddr.port == server.port
            }
            await asyncio.sleep(1.5)
            runs = await _trigger(server.port, 20)
            took = await _received(peer, 20 * STEPS, within_s=POLL_S / 2)
        finally:
            server.kill()
    assert len(workers) == 3
    assert len(listening) == 2  # the delivering worker is never handed a connection
    assert _keys(peer) == {f"{r.id}:{i}" for r in runs for i in range(STEPS)}
    assert took < POLL_S / 2


def _two_free_ports() -> int:
    """A port p with p and p + 1 free a moment ago."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            first = int(a.getsockname()[1])
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", first + 1))
                except OSError:
                    continue
                return first
    raise RuntimeError("no two consecutive free ports")


async def test_worker_ports_let_a_round_robin_client_use_every_worker(tmp_path: Path) -> None:
    first = _two_free_ports()
    env = {"SWITCHBOARD_WORKER_LISTEN": f"127.0.0.1:{first}"}
    server = ServerProcess(tmp_path / "rr.db", env, workers=2)
    try:
        line = server.wait_for_line(r"round_robin clients: (\S+)")
        target = line.group(1)
        options = (("grpc.lb_policy_name", "round_robin"),)
        async with Switchboard(target, options=options) as sb:
            for i in range(20):
                await sb.contacts.upsert(email=f"rr{i}@example.com")
            workers = psutil.Process(server.proc.pid).children()
            ports = {
                w.pid: {
                    c.laddr.port
                    for c in w.net_connections("tcp")
                    if c.status == psutil.CONN_ESTABLISHED
                }
                for w in workers
            }
    finally:
        server.kill()
    assert target == f"ipv4:127.0.0.1:{first},127.0.0.1:{first + 1}"
    # Each worker holds the client's connection to its own port: calls go to both.
    assert sorted(port for held in ports.values() for port in held) == [first, first + 1]
    assert all(len(held) == 1 for held in ports.values())
