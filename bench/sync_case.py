"""The sync case: contacts imported, then delivered to a batch-capable destination.

Until contact sync lands, an import starts no runs, so the case starts them itself: after
`ImportContacts` (over gRPC, as users call it) it writes one run of the `contact.sync`
trigger per imported contact straight into the server's database, in one transaction, as
contact sync will do in the import's own transaction. The server's dispatcher then claims
the steps, coalesces them into batches of 100 and POSTs each batch (the webhook connector's
batch form) to the local contract server, which counts vendor calls and items.

Figures: `delivered_per_s` is contacts delivered per second from the runs' commit to the
last item received (the dispatcher alone); `server_cpu_us_per_contact` is the server's CPU
time over that delivery divided by the contacts (the figure other load on a shared machine
barely moves: 100 us per contact is 10,000 contacts per second of one core);
`contacts_per_s` covers import, run creation and delivery end to end;
`calls_per_100_contacts` is vendor calls per 100 contacts.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
from google.protobuf.struct_pb2 import Struct

from bench.targets import BENCH_ENV, LOAD_CORES, SERVER_CORES, Target, free_port, serve_argv
from switchboard.client import Switchboard
from switchboard.server.common.timeutil import now_us
from switchboard.server.config.flow import TriggerSettings
from switchboard.server.config.sections import DatabaseSettings
from switchboard.server.runs.start import start_run
from switchboard.server.store.base import WriteTx
from switchboard.server.store.sqlite.store import SqliteStore

SECRET = "whsec_" + base64.b64encode(b"bench-sync-signing-key-0123456789").decode()
TRIGGER = {"steps": [{"connector": "dest", "action": "contacts.upsert"}]}


def _config(url: str) -> str:
    return f"""
[dispatch]
poll_interval_s = 0.05

[connectors.dest]
kind = "webhook"
timeout_s = 10.0
options = {{ url = "{url}", secret = "{SECRET}", max_batch = 100, actions = ["contacts.upsert"] }}

[triggers."contact.sync"]
description = "One step to the batch destination, per contact."
[[triggers."contact.sync".steps]]
connector = "dest"
action = "contacts.upsert"
"""


def _stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as answer:
        return dict(json.loads(answer.read()))


async def _import(port: int, rows: int) -> float:
    def batches() -> Any:
        for start in range(0, rows, 1000):
            yield [
                {"email": f"sync-{i:07d}@example.com", "first_name": "Sync", "lists": ["sync"]}
                for i in range(start, min(rows, start + 1000))
            ]

    async with Switchboard(f"127.0.0.1:{port}", timeout=None) as sb:
        t0 = time.perf_counter()
        summary = await sb.contacts.import_(batches())
        elapsed = time.perf_counter() - t0
    if summary.failed or summary.received != rows:
        raise RuntimeError(f"sync import went wrong: {summary}")
    return elapsed


async def _start_runs(db: Path, rows: int) -> tuple[float, float]:
    """One `contact.sync` run per imported contact, in one commit; (seconds, commit time)."""
    store = SqliteStore(DatabaseSettings(path=str(db)))
    await store.open()
    trigger = TriggerSettings.model_validate(TRIGGER)
    try:
        t0 = time.perf_counter()

        def work(tx: WriteTx) -> int:
            contacts = tx.list_contacts("sync", 0, None, rows)
            now = now_us()
            for contact in contacts:
                start_run(tx, "contact.sync", trigger, contact, Struct(), now)
            return len(contacts)

        started = await store.write(work, bulk=True)
        committed = time.time()
        if started != rows:
            raise RuntimeError(f"{started} runs started for {rows} contacts")
        return time.perf_counter() - t0, committed
    finally:
        await store.close()


def sync_rate(workdir: Path, rows: int, timeout_s: float = 300.0) -> dict[str, float]:
    """Run the case once against fresh servers; see the module docstring for the figures."""
    contract_port, port = free_port(), free_port()
    contract = Target(
        "contract",
        [sys.executable, "-m", "bench.contract_server", "--port", str(contract_port)],
        contract_port,
        cores=LOAD_CORES,
    )
    config = workdir / "sync.toml"
    config.write_text(_config(f"http://127.0.0.1:{contract_port}/batch"))
    db = workdir / "sync.db"
    env = {"SWITCHBOARD_DATABASE__PATH": str(db), **BENCH_ENV}
    server = Target("sync", serve_argv(config, port, workers=1), port, env, cores=SERVER_CORES)
    try:
        contract.wait_listening()
        server.wait_listening()
        import_s = asyncio.run(_import(port, rows))
        cpu_before = _cpu_s(server)
        enqueue_s, committed = asyncio.run(_start_runs(db, rows))
        deadline = time.monotonic() + timeout_s
        while (stats := _stats(contract_port))["items"] < rows:
            if time.monotonic() > deadline:
                raise RuntimeError(f"sync case: {stats['items']} of {rows} delivered in time")
            time.sleep(0.05)
        # Includes the server's share of the run-creation commit (the WAL), a small part.
        cpu_s = _cpu_s(server) - cpu_before
    finally:
        server.stop()
        contract.stop()
    deliver_s = max(1e-6, stats["last_s"] - committed)
    return {
        "contacts": rows,
        "import_per_s": round(rows / import_s),
        "runs_started_per_s": round(rows / enqueue_s),
        "delivered_per_s": round(rows / deliver_s),
        "server_cpu_us_per_contact": round(1e6 * cpu_s / rows, 1),
        "contacts_per_s": round(rows / (import_s + enqueue_s + deliver_s)),
        "vendor_calls": stats["calls"],
        "calls_per_100_contacts": round(100 * stats["calls"] / rows, 3),
        "rejected_calls": stats["rejected"],
    }


def _cpu_s(target: Target) -> float:
    total = 0.0
    for pid in target.pids():
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total
