"""The sync case: contacts imported with contact sync on, delivered by the server's own sync.

`ImportContacts` (over gRPC, as users call it) writes the contacts; the `sync` section
names one batch-capable destination (the webhook connector's batch form, 100 items a call),
so each accepted row starts its `contact.changed` delivery in the import's own transaction.
The server's dispatcher then claims the steps, coalesces them into batches and POSTs each
batch to the local contract server, which counts vendor calls and items. Nothing is
written behind the server's back: this is the path a user's import takes.

Figures: `contacts_per_s` covers import, sync run creation and delivery end to end (from
the import's first message to the last item received); `import_per_s` is the import call
alone (the sync deliveries run beside it); `drain_s` is how long after the import returned
the last item arrived; `server_cpu_us_per_contact` is the server's CPU time over the whole
case divided by the contacts (the figure other load on a shared machine barely moves:
100 us per contact is 10,000 contacts per second of one core); `calls_per_100_contacts` is
vendor calls per 100 contacts.
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

from bench.targets import BENCH_ENV, LOAD_CORES, SERVER_CORES, Target, free_port, serve_argv
from switchboard.client import Switchboard

SECRET = "whsec_" + base64.b64encode(b"bench-sync-signing-key-0123456789").decode()


def _config(url: str, chunk_runs: bool) -> str:
    return f"""
[sync]
chunk_runs = {str(chunk_runs).lower()}

[dispatch]
poll_interval_s = 0.05

[connectors.dest]
kind = "webhook"
timeout_s = 10.0
options = {{ url = "{url}", secret = "{SECRET}", max_batch = 100, actions = ["contacts.upsert"] }}

[sync.destinations]
crm = false  # the default destination (the embedded CRM): only the batch tool is measured

[sync.destinations.dest]
connector = "dest"
action = "contacts.upsert"
events = ["changed"]
"""


def _stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as answer:
        return dict(json.loads(answer.read()))


async def _import(port: int, rows: int) -> tuple[float, float]:
    """(wall-clock start, seconds the import call took)."""

    def batches() -> Any:
        for start in range(0, rows, 1000):
            yield [
                {"email": f"sync-{i:07d}@example.com", "first_name": "Sync", "lists": ["sync"]}
                for i in range(start, min(rows, start + 1000))
            ]

    async with Switchboard(f"127.0.0.1:{port}", timeout=None) as sb:
        started = time.time()
        t0 = time.perf_counter()
        summary = await sb.contacts.import_(batches())
        elapsed = time.perf_counter() - t0
    if summary.failed or summary.created != rows:
        raise RuntimeError(f"sync import went wrong: {summary}")
    return started, elapsed


def sync_rate(
    workdir: Path, rows: int, timeout_s: float = 300.0, chunk_runs: bool = True
) -> dict[str, float]:
    """Run the case once against fresh servers; see the module docstring for the figures.

    `chunk_runs=False` measures the per-contact sync runs an import started before.
    """
    contract_port, port = free_port(), free_port()
    contract = Target(
        "contract",
        [sys.executable, "-m", "bench.contract_server", "--port", str(contract_port)],
        contract_port,
        cores=LOAD_CORES,
    )
    config = workdir / "sync.toml"
    config.write_text(_config(f"http://127.0.0.1:{contract_port}/batch", chunk_runs))
    env = {"SWITCHBOARD_DATABASE__PATH": str(workdir / "sync.db"), **BENCH_ENV}
    server = Target("sync", serve_argv(config, port, workers=1), port, env, cores=SERVER_CORES)
    try:
        contract.wait_listening()
        server.wait_listening()
        cpu_before = _cpu_s(server)
        started, import_s = asyncio.run(_import(port, rows))
        deadline = time.monotonic() + timeout_s
        while (stats := _stats(contract_port))["items"] < rows:
            if time.monotonic() > deadline:
                raise RuntimeError(f"sync case: {stats['items']} of {rows} delivered in time")
            time.sleep(0.02)
        cpu_s = _cpu_s(server) - cpu_before
    finally:
        server.stop()
        contract.stop()
    total_s = max(1e-6, stats["last_s"] - started)
    return {
        "contacts": rows,
        "contacts_per_s": round(rows / total_s),
        "import_per_s": round(rows / import_s),
        "drain_s": round(max(0.0, total_s - import_s), 2),
        "server_cpu_us_per_contact": round(1e6 * cpu_s / rows, 1),
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


if __name__ == "__main__":
    import tempfile

    args = [a for a in sys.argv[1:] if a != "--per-row"]
    with tempfile.TemporaryDirectory() as tmp:
        count = int(args[0]) if args else 20_000
        print(sync_rate(Path(tmp), count, chunk_runs="--per-row" not in sys.argv))
