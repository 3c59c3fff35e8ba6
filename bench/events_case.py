"""The events case: one subscriber streaming the log, and what sealing costs a write.

A server is filled over gRPC (`ImportContacts`: one `contact.created` event per contact,
each with the contact's values sealed under its own key, plus the sync runs' events), then
one `StreamEvents` subscriber reads the whole log from cursor 0 to its head.

Figures: `stream_events_per_s` is events received per second by that subscriber (wall
clock, client decoding included); `stream_server_cpu_us_per_event` the server's CPU time
per event sent and `stream_client_cpu_us_per_event` the subscriber's;
`stream_events_per_cpu_s` the rate one core each would sustain;
`upsert_server_cpu_us_per_call` the server's CPU per `UpsertContact` (each writes one
sealed event) over sequential calls. `append_us_*` compares, in this process on one
SQLite file, appending a contact event the old way (JSON of ids and field names) with the
sealed envelope (values, actor, AES-GCM under the contact's key).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import psutil

from bench.targets import BENCH_CONFIG, BENCH_ENV, SERVER_CORES, Target, free_port, serve_argv
from switchboard.client import Switchboard
from switchboard.server.config.sections import DatabaseSettings
from switchboard.server.store import event_values
from switchboard.server.store.base import WriteTx
from switchboard.server.store.event_log import append
from switchboard.server.store.sqlite.store import SqliteStore
from switchboard.v1 import contacts_pb2


def _cpu_s(target: Target) -> float:
    return sum(sum(psutil.Process(p).cpu_times()[:2]) for p in target.pids())


async def _fill(port: int, contacts: int) -> None:
    def batches() -> Any:
        for start in range(0, contacts, 1000):
            yield [
                {
                    "email": f"ev-{i:07d}@example.com",
                    "first_name": "Eve",
                    "attributes": {"plan": "pro"},
                }
                for i in range(start, min(contacts, start + 1000))
            ]

    async with Switchboard(f"127.0.0.1:{port}", timeout=None) as sb:
        await sb.contacts.import_(batches())


async def _stream(port: int) -> tuple[int, float, float]:
    """(events, wall seconds, this subscriber's CPU seconds) for the whole log."""
    async with Switchboard(f"127.0.0.1:{port}", timeout=None) as sb:
        count = 0
        t0, c0 = time.perf_counter(), time.process_time()
        async for reply in sb.events.stream(stop_at_head=True):
            count += len(reply.events)
        return count, time.perf_counter() - t0, time.process_time() - c0


def _drain(db: Path, limit_s: float = 300.0) -> None:
    """Wait until the server's outbox is empty (or `limit_s` passed)."""
    deadline = time.monotonic() + limit_s
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        while time.monotonic() < deadline:
            if conn.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0:
                return
            time.sleep(0.5)


async def _upserts(port: int, calls: int) -> None:
    async with Switchboard(f"127.0.0.1:{port}", timeout=None) as sb:
        for i in range(calls):
            await sb.contacts.upsert(email=f"up-{i % 100}@example.com", first_name=f"U{i}")


def stream_rate(workdir: Path, contacts: int, upserts: int = 2000) -> dict[str, float]:
    """Fill a fresh server, stream its log once, then time upserts; see the docstring."""
    port = free_port()
    config = workdir / "events.toml"
    config.write_text(BENCH_CONFIG)
    env = {"SWITCHBOARD_DATABASE__PATH": str(workdir / "events.db"), **BENCH_ENV}
    server = Target("events", serve_argv(config, port, workers=1), port, env, cores=SERVER_CORES)
    try:
        server.wait_listening()
        asyncio.run(_fill(port, contacts))
        # The import's contact sync (and its write-backs) is delivered in the background:
        # measured alongside, it would be billed to the stream and the upserts.
        _drain(workdir / "events.db")
        cpu0 = _cpu_s(server)
        count, wall, client_cpu = asyncio.run(_stream(port))
        stream_cpu = _cpu_s(server) - cpu0
        asyncio.run(_upserts(port, 100))  # warm up: the 100 contacts exist
        cpu0 = _cpu_s(server)
        asyncio.run(_upserts(port, upserts))
        upsert_cpu = _cpu_s(server) - cpu0
    finally:
        server.stop()
    return {
        "events": count,
        "stream_events_per_s": round(count / wall),
        "stream_server_cpu_us_per_event": round(stream_cpu / count * 1e6, 2),
        "stream_client_cpu_us_per_event": round(client_cpu / count * 1e6, 2),
        # What one server core and one subscriber core sustain, whichever is slower: on a
        # loaded machine the wall-clock rate measures the other load as much as this.
        "stream_events_per_cpu_s": round(count / max(stream_cpu, client_cpu)),
        "upsert_server_cpu_us_per_call": round(upsert_cpu / upserts * 1e6, 1),
        **asyncio.run(_append_costs(workdir / "append.db")),
    }


async def _append_costs(db: Path, events: int = 20_000) -> dict[str, float]:
    """CPU µs per appended contact event: old JSON rows against sealed envelopes."""
    store = SqliteStore(DatabaseSettings(path=str(db)))
    await store.open()
    people = [
        contacts_pb2.Contact(id=f"c_{i}", email=f"p{i}@example.com", first_name="Pat", version=2)
        for i in range(200)
    ]
    for person in people:
        person.attributes["plan"] = "pro"

    def legacy(tx: WriteTx) -> None:
        for i in range(events):
            c = people[i % len(people)]
            body = f'{{"id": "{c.id}", "version": {c.version}, "fields": ["first_name"]}}'
            tx.append_event("contact.updated", c.id, body.encode(), i)

    def sealed(tx: WriteTx) -> None:
        for i in range(events):
            c = people[i % len(people)]
            clear, personal = event_values.contact_changed(c, ["first_name"])
            append(tx, "contact.updated", c.id, i, contact_id=c.id, clear=clear, personal=personal)

    try:
        await store.write(sealed, bulk=True)  # makes the 200 keys: not what is measured
        costs = {}
        for name, fn in (("legacy_json", legacy), ("sealed", sealed)):
            t0 = time.process_time()
            await store.write(fn, bulk=True)
            costs[name] = round((time.process_time() - t0) / events * 1e6, 2)
    finally:
        await store.close()
    return {"append_us_legacy_json": costs["legacy_json"], "append_us_sealed": costs["sealed"]}


if __name__ == "__main__":
    import sys
    import tempfile

    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with tempfile.TemporaryDirectory(prefix="switchboard-events-") as tmp:
        print(stream_rate(Path(tmp), rows))
