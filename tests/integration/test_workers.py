"""Several worker processes on one port: consistent reads, clean stop, restarts."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psutil
import pytest

from switchboard.client import Switchboard
from tests.process import ServerProcess

CHANNELS = 16  # separate connections; SO_REUSEPORT spreads them over the workers
HOLD_S = 0.05  # cache.invalidation_hold_s: a written contact is cacheable again after this


def _worker_pids(server: ServerProcess) -> list[int]:
    return [c.pid for c in psutil.Process(server.proc.pid).children()]


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[ServerProcess]:
    env = {"SWITCHBOARD_CACHE__INVALIDATION_HOLD_S": str(HOLD_S)}
    server = ServerProcess(tmp_path / "workers.db", extra_env=env, workers=2)
    yield server
    server.kill()


@contextlib.asynccontextmanager
async def _clients(server: ServerProcess) -> AsyncIterator[list[Switchboard]]:
    """CHANNELS clients, each on a connection of its own (a local subchannel pool), so that
    SO_REUSEPORT spreads them over the workers."""
    options = (("grpc.use_local_subchannel_pool", 1),)
    clients = [Switchboard(f"127.0.0.1:{server.port}", options=options) for _ in range(CHANNELS)]
    try:
        yield clients
    finally:
        for sb in clients:
            await sb.aclose()


async def test_a_write_in_one_worker_is_seen_by_reads_in_every_worker(
    two_workers: ServerProcess,
) -> None:
    async with _clients(two_workers) as clients:
        created = (
            await clients[0].contacts.upsert(email="multi@example.com", first_name="v1")
        ).contact
        await asyncio.sleep(HOLD_S * 2)
        for sb in clients:  # every worker now caches v1
            assert (await sb.contacts.get(email="multi@example.com")).first_name == "v1"
        for round_ in range(2, 6):
            writer = clients[round_ % CHANNELS]
            await writer.contacts.upsert(id=created.id, first_name=f"v{round_}")
            for sb in clients:
                assert (await sb.contacts.get(email="multi@example.com")).first_name == f"v{round_}"
                assert (await sb.contacts.get(id=created.id)).version == round_
            await asyncio.sleep(HOLD_S * 2)
            for sb in clients:  # cache this version everywhere, for the next write to drop
                assert (await sb.contacts.get(id=created.id)).version == round_


async def test_a_lead_write_in_one_worker_is_seen_by_reads_in_every_worker(
    two_workers: ServerProcess,
) -> None:
    async with _clients(two_workers) as clients:
        cid = (await clients[0].contacts.upsert(email="multi-lead@example.com")).contact.id
        await clients[0].leads.score(id=cid)
        for count in range(1, 4):
            await asyncio.sleep(HOLD_S * 2)
            for sb in clients:  # every worker caches the lead state
                assert (await sb.leads.get(id=cid)).activity_count == count - 1
            await clients[count].leads.record_activity(id=cid, type="email_click")
            for sb in clients:
                assert (await sb.leads.get(id=cid)).activity_count == count


@pytest.mark.slow
async def test_a_page_token_from_one_worker_is_accepted_by_every_worker(
    two_workers: ServerProcess,
) -> None:
    # No page_tokens.keys configured: the workers must all use the database's generated key.
    async with _clients(two_workers) as clients:
        for i in range(4):
            await clients[0].contacts.upsert(email=f"page{i}@example.com")
        token = (await clients[0].contacts.list(page_size=2)).next_page_token
        assert token
        for sb in clients:
            rest = await sb.contacts.list(page_size=2, page_token=token)
            assert [c.email for c in rest.contacts] == ["page2@example.com", "page3@example.com"]


async def test_both_workers_serve(two_workers: ServerProcess) -> None:
    pids = _worker_pids(two_workers)
    assert len(pids) == 2
    before = {pid: psutil.Process(pid).cpu_times().user for pid in pids}
    target = f"127.0.0.1:{two_workers.port}"
    options = (("grpc.use_local_subchannel_pool", 1),)
    for i in range(CHANNELS):
        async with Switchboard(target, options=options) as sb:
            for j in range(20):
                await sb.contacts.upsert(email=f"spread{i}-{j}@example.com")
    busy = [psutil.Process(pid).cpu_times().user - before[pid] for pid in pids]
    assert all(b > 0 for b in busy), busy


def test_sigterm_stops_every_worker(two_workers: ServerProcess) -> None:
    pids = _worker_pids(two_workers)
    code, stderr = two_workers.terminate()
    assert code == 0, stderr
    assert stderr.count("stopping") == 2
    assert not any(
        psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie" for pid in pids
    )


async def test_a_crashed_worker_is_replaced(two_workers: ServerProcess) -> None:
    victim = _worker_pids(two_workers)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        pids = _worker_pids(two_workers)
        if len(pids) == 2 and victim not in pids:
            break
        await asyncio.sleep(0.1)
    assert len(pids) == 2
    assert victim not in pids
    async with Switchboard(f"127.0.0.1:{two_workers.port}") as sb:
        assert (await sb.contacts.upsert(email="after-crash@example.com")).created


async def test_workers_share_the_inbound_webhook_port(tmp_path: Path) -> None:
    import re
    import urllib.error
    import urllib.request

    server = ServerProcess(
        tmp_path / "inbound.db", {"SWITCHBOARD_INBOUND__LISTEN": "127.0.0.1:0"}, workers=2
    )
    try:
        deadline = asyncio.get_running_loop().time() + 10
        url = None
        while url is None and asyncio.get_running_loop().time() < deadline:
            line = await asyncio.to_thread(server.proc.stderr.readline)  # type: ignore[union-attr]
            found = re.search(r"inbound webhooks on (http://\S+)/webhooks/", line)
            url = found.group(1) if found else None
        assert url is not None, "the supervisor did not announce the inbound port"
        statuses = set()
        for _ in range(CHANNELS):  # new connections, spread over both workers
            request = urllib.request.Request(f"{url}/webhooks/nope", data=b"{}", method="POST")
            try:
                await asyncio.to_thread(urllib.request.urlopen, request, None, 5)
            except urllib.error.HTTPError as exc:
                statuses.add(exc.code)
        assert statuses == {404}  # unknown source, answered by whichever worker got it
        assert len(_worker_pids(server)) == 2
    finally:
        server.kill()
