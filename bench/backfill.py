"""The backfill case: every stored contact sent to a newly connected batch destination.

Contacts are imported first (no sync destination, so nothing is sent then); then
`Connectors.BackfillConnector` is called over gRPC, as `switchboard connectors backfill`
calls it, and its progress stream is read to the end. The destination is the webhook
connector's batch form (100 contacts a call) POSTing to the local contract server, which
counts vendor calls and items.

Figures: `backfilled_per_s` is contacts from the call to its final progress message (queue,
deliver, report); `server_cpu_us_per_contact` is the server's CPU time over that span divided
by the contacts (the figure other load on a shared machine barely moves);
`calls_per_100_contacts` is vendor calls per 100 contacts. Run alone: `python -m bench.backfill`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil

from bench.targets import BENCH_ENV, LOAD_CORES, SERVER_CORES, Target, free_port, serve_argv
from switchboard.client import Switchboard

SECRET = "whsec_" + base64.b64encode(b"bench-backfill-signing-key-01234").decode()


def _config(url: str) -> str:
    return f"""
[dispatch]
poll_interval_s = 0.05

[sync]
destinations = {{}}

[connectors.dest]
kind = "webhook"
timeout_s = 10.0
options = {{ url = "{url}", secret = "{SECRET}", max_batch = 100, actions = ["contacts.upsert"] }}
"""


def _stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as answer:
        return dict(json.loads(answer.read()))


def _cpu_s(target: Target) -> float:
    total = 0.0
    for pid in target.pids():
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


async def _import(port: int, rows: int) -> None:
    def batches() -> Any:
        for start in range(0, rows, 1000):
            yield [
                {"email": f"fill-{i:07d}@example.com", "first_name": "Fill", "country": "FR"}
                for i in range(start, min(rows, start + 1000))
            ]

    async with Switchboard(f"127.0.0.1:{port}", timeout=None) as sb:
        summary = await sb.contacts.import_(batches())
    if summary.failed or summary.received != rows:
        raise RuntimeError(f"backfill import went wrong: {summary}")


async def _backfill(port: int) -> tuple[float, Any]:
    async with Switchboard(f"127.0.0.1:{port}", timeout=None) as sb:
        t0 = time.perf_counter()
        last = None
        async for last in sb.connectors.backfill("dest"):  # noqa: B007 - the last one counts
            pass
        return time.perf_counter() - t0, last


def backfill_rate(workdir: Path, rows: int) -> dict[str, float]:
    """Run the case once against fresh servers; see the module docstring for the figures."""
    contract_port, port = free_port(), free_port()
    contract = Target(
        "contract",
        [sys.executable, "-m", "bench.contract_server", "--port", str(contract_port)],
        contract_port,
        cores=LOAD_CORES,
    )
    config = workdir / "backfill.toml"
    config.write_text(_config(f"http://127.0.0.1:{contract_port}/batch"))
    env = {"SWITCHBOARD_DATABASE__PATH": str(workdir / "backfill.db"), **BENCH_ENV}
    server = Target("backfill", serve_argv(config, port, workers=1), port, env,
                    cores=SERVER_CORES)
    try:
        contract.wait_listening()
        server.wait_listening()
        asyncio.run(_import(port, rows))
        cpu_before = _cpu_s(server)
        elapsed, last = asyncio.run(_backfill(port))
        cpu_s = _cpu_s(server) - cpu_before
        stats = _stats(contract_port)
    finally:
        server.stop()
        contract.stop()
    if last is None or not last.done or last.succeeded != rows or stats["items"] != rows:
        raise RuntimeError(f"backfill case: {last} / {stats['items']} items for {rows} contacts")
    return {
        "contacts": rows,
        "backfilled_per_s": round(rows / elapsed),
        "server_cpu_us_per_contact": round(1e6 * cpu_s / rows, 1),
        "vendor_calls": stats["calls"],
        "calls_per_100_contacts": round(100 * stats["calls"] / rows, 3),
    }


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="switchboard-backfill-") as tmp:
        count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
        print(json.dumps(backfill_rate(Path(tmp), count)))
