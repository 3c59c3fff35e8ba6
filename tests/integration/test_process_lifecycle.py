"""The server as a process: acknowledged writes survive kill -9; SIGTERM stops cleanly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from switchboard.v1 import contacts_pb2, contacts_pb2_grpc
from tests.process import ServerProcess

N_WRITES = 200


async def _upsert_many(port: int, n: int) -> list[str]:
    """Upsert `n` contacts concurrently; return the ids the server acknowledged."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = contacts_pb2_grpc.ContactSyncStub(ch)

        async def one(i: int) -> str:
            req = contacts_pb2.UpsertContactRequest(
                contact=contacts_pb2.Contact(email=f"durable{i}@example.com", first_name=f"N{i}")
            )
            return str((await stub.UpsertContact(req, timeout=20)).contact.id)

        return list(await asyncio.gather(*(one(i) for i in range(n))))


async def _count_found(port: int, ids: list[str]) -> int:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = contacts_pb2_grpc.ContactSyncStub(ch)
        found = 0
        for contact_id in ids:
            resp = await stub.GetContact(contacts_pb2.GetContactRequest(id=contact_id), timeout=10)
            found += resp.contact.id == contact_id
        return found


async def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    server = ServerProcess(db)
    try:
        acknowledged = await _upsert_many(server.port, N_WRITES)
    finally:
        server.kill()
    assert len(set(acknowledged)) == N_WRITES

    restarted = ServerProcess(db)
    try:
        assert await _count_found(restarted.port, acknowledged) == N_WRITES
    finally:
        restarted.kill()


async def test_sigterm_exits_zero_after_graceful_stop(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "term.db", {"SWITCHBOARD_GRACE_PERIOD_S": "2"})
    await _upsert_many(server.port, 5)
    code, stderr = server.terminate()
    assert code == 0, stderr
    assert "stopped" in stderr
