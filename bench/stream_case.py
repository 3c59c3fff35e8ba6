"""The streaming case: UpsertContacts against unary UpsertContact, server CPU per item.

One server (pinned like `sb1`) with 1,000 seeded contacts; the same updates (a new first
name, no idempotency key, as `load_grpc`'s upsert_contact case sends) go once as unary
calls from 64 concurrent callers and once over UpsertContacts streams, round after round.
The figure that counts is the server's CPU time per written contact (psutil, the server's
process tree), which other load on a shared machine barely moves; items/s is shown too.
`stream_vs_unary_per_core` is unary CPU per item over streaming CPU per item.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import psutil

from bench.targets import BENCH_CONFIG, BENCH_ENV, SERVER_CORES, Target, free_port, serve_argv
from switchboard.client import Switchboard
from switchboard.v1 import contacts_pb2

CONTACTS = 1000
UNARY_CONCURRENCY = 64
STREAMS = 2
PER_MESSAGE = 100  # what the client's `upsert_many` packs by default


def _request(i: int) -> contacts_pb2.UpsertContactRequest:
    contact = contacts_pb2.Contact(
        email=f"stream-{i % CONTACTS:05d}@example.com", first_name=f"F{i}"
    )
    return contacts_pb2.UpsertContactRequest(contact=contact)


# Requests are serialized before the clock starts and answers parsed after it stops, on
# both paths (as `load_grpc` does): the load generator shares a loaded machine, and the
# server must be kept busy for its CPU per item to be its cost, not its idle wake-ups.
def _unary_bodies(items: int) -> list[bytes]:
    return [_request(i).SerializeToString() for i in range(items)]


def _stream_bodies(items: int) -> list[bytes]:
    return [
        contacts_pb2.UpsertContactsRequest(
            upserts=[_request(i) for i in range(first, min(items, first + PER_MESSAGE))]
        ).SerializeToString()
        for first in range(0, items, PER_MESSAGE)
    ]


async def _unary(channel: grpc.aio.Channel, bodies: list[bytes]) -> list[bytes]:
    call = channel.unary_unary("/switchboard.v1.ContactSync/UpsertContact")
    todo = iter(bodies)
    answers: list[bytes] = []

    async def caller() -> None:
        for body in todo:
            answers.append(await call(body))

    await asyncio.gather(*(caller() for _ in range(UNARY_CONCURRENCY)))
    for raw in answers:
        contacts_pb2.UpsertContactResponse.FromString(raw)
    return answers


async def _streamed(channel: grpc.aio.Channel, bodies: list[bytes]) -> list[bytes]:
    call = channel.stream_stream("/switchboard.v1.ContactSync/UpsertContacts")
    share = len(bodies) // STREAMS

    async def one(part: list[bytes]) -> list[bytes]:
        return [answer async for answer in call(iter(part))]

    parts = [bodies[s * share : (s + 1) * share] for s in range(STREAMS)]
    answers = [a for got in await asyncio.gather(*(one(p) for p in parts)) for a in got]
    results = [
        r for a in answers for r in contacts_pb2.UpsertContactsResponse.FromString(a).results
    ]
    if failed := sum(r.HasField("error") for r in results):
        raise RuntimeError(f"{failed} streamed upserts failed")
    return [r.SerializeToString() for r in results]


def _cpu(pids: list[int]) -> float:
    return sum(sum(psutil.Process(p).cpu_times()[:2]) for p in pids)


Run = Callable[[grpc.aio.Channel, list[bytes]], Awaitable[list[bytes]]]


async def _measure(port: int, pids: list[int], run: Run, bodies: list[bytes]) -> dict[str, float]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        await run(channel, bodies[: max(STREAMS, len(bodies) // 10)])  # warm-up
        before, t0 = _cpu(pids), time.perf_counter()
        done = len(await run(channel, bodies))
        elapsed, used = time.perf_counter() - t0, _cpu(pids) - before
    return {"items_per_s": done / elapsed, "server_cpu_us_per_item": 1e6 * used / done}


async def _seed(port: int) -> None:
    async with Switchboard(f"127.0.0.1:{port}", timeout=60) as sb:
        rows = [
            {"email": f"stream-{i:05d}@example.com", "first_name": "S"} for i in range(CONTACTS)
        ]
        await sb.contacts.import_([rows[i : i + 500] for i in range(0, CONTACTS, 500)])


#: The server's environment without contact sync: the write path alone, no runs delivered.
NO_SYNC = {"SWITCHBOARD_SYNC__DESTINATIONS": '{"crm": false}'}


def stream_rate(
    workdir: Path, items: int, rounds: int, extra_env: dict[str, str] | None = None
) -> dict[str, float]:
    """Medians over `rounds` of unary and streamed upserts against one fresh server."""
    config = workdir / "stream.toml"
    config.write_text(BENCH_CONFIG)
    port = free_port()
    env = {
        "SWITCHBOARD_DATABASE__PATH": str(workdir / "stream.db"),
        **BENCH_ENV,
        **(extra_env or {}),
    }
    target = Target("stream", serve_argv(config, port, workers=1), port, env, cores=SERVER_CORES)
    samples: dict[str, list[dict[str, float]]] = {"unary": [], "stream": []}
    try:
        target.wait_listening()
        asyncio.run(_seed(port))
        pids = target.pids()
        unary, streamed = _unary_bodies(items), _stream_bodies(items)
        for _ in range(rounds):
            samples["unary"].append(asyncio.run(_measure(port, pids, _unary, unary)))
            samples["stream"].append(asyncio.run(_measure(port, pids, _streamed, streamed)))
    finally:
        target.stop()
    out: dict[str, float] = {}
    for name, runs in samples.items():
        for key in runs[0]:
            out[f"{name}_{key}"] = round(statistics.median(r[key] for r in runs), 1)
    out["stream_vs_unary_per_core"] = round(
        out["unary_server_cpu_us_per_item"] / out["stream_server_cpu_us_per_item"], 2
    )
    return out


if __name__ == "__main__":  # python -m bench.stream_case: this case alone
    import json
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="switchboard-stream-") as tmp:
        n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
        print(json.dumps(stream_rate(Path(tmp), n, rounds=3), indent=2))
