"""The history backfill case: the log's events replayed to a newly connected batch destination.

Contacts are imported (one `contact.created` each) and each records two activities (a page
view and a purchase), with no sync destination, so nothing is sent then; then
`Connectors.BackfillConnector` is called in history mode over gRPC, as
`switchboard connectors backfill --history` calls it, and its progress stream is read to
the end. The destination is the webhook connector's batch form (100 steps a call) POSTing
to the local contract server, which counts vendor calls and items.

Figures: `events_per_s` is events from the call to its final progress message (count,
queue, deliver, report); `server_cpu_us_per_event` is the server's CPU time over that span
divided by the events (the figure other load on a shared machine barely moves);
`calls_per_100_events` is vendor calls per 100 events. A contact's events go one at a
time in log order (per-contact ordering), so a batch holds at most one event per contact.
Run alone: `python -m bench.backfill_history [contacts]`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.backfill import SECRET, _cpu_s, _import, _stats
from bench.targets import BENCH_ENV, LOAD_CORES, SERVER_CORES, Target, free_port, serve_argv
from switchboard.client import Switchboard

ACTIONS = '["contacts.upsert", "events.track", "purchases.record"]'
_CONCURRENT = 64  # activity calls in flight while filling the log


def _config(url: str) -> str:
    return f"""
[dispatch]
poll_interval_s = 0.05

[sync]
destinations = {{}}

[triggers]

[connectors.dest]
kind = "webhook"
timeout_s = 10.0
options = {{ url = "{url}", secret = "{SECRET}", max_batch = 100, actions = {ACTIONS} }}
"""


async def _activities(port: int, rows: int) -> None:
    async with Switchboard(f"127.0.0.1:{port}", timeout=None) as sb:
        gate = asyncio.Semaphore(_CONCURRENT)

        async def two(i: int) -> None:
            email = f"fill-{i:07d}@example.com"
            async with gate:
                await sb.leads.record_activity(email=email, type="page_view",
                                               attributes={"url": f"/p/{i}"})
                await sb.leads.record_activity(email=email, type="purchase", value=9.5,
                                               attributes={"order_id": f"o{i}"})

        await asyncio.gather(*(two(i) for i in range(rows)))


async def _backfill(port: int) -> tuple[float, Any]:
    async with Switchboard(f"127.0.0.1:{port}", timeout=None) as sb:
        t0 = time.perf_counter()
        last = None
        async for last in sb.connectors.backfill("dest", history=True):  # noqa: B007
            pass
        return time.perf_counter() - t0, last


def history_rate(workdir: Path, rows: int) -> dict[str, float]:
    """Run the case once against fresh servers; see the module docstring for the figures."""
    contract_port, port = free_port(), free_port()
    contract = Target(
        "contract",
        [sys.executable, "-m", "bench.contract_server", "--port", str(contract_port)],
        contract_port,
        cores=LOAD_CORES,
    )
    config = workdir / "history.toml"
    config.write_text(_config(f"http://127.0.0.1:{contract_port}/batch"))
    env = {"SWITCHBOARD_DATABASE__PATH": str(workdir / "history.db"), **BENCH_ENV}
    server = Target("history", serve_argv(config, port, workers=1), port, env,
                    cores=SERVER_CORES)
    events = rows * 3
    try:
        contract.wait_listening()
        server.wait_listening()
        asyncio.run(_import(port, rows))
        asyncio.run(_activities(port, rows))
        cpu_before = _cpu_s(server)
        elapsed, last = asyncio.run(_backfill(port))
        cpu_s = _cpu_s(server) - cpu_before
        stats = _stats(contract_port)
    finally:
        server.stop()
        contract.stop()
    if last is None or not last.done or last.succeeded != events or stats["items"] != events:
        raise RuntimeError(f"history case: {last} / {stats['items']} items for {events} events")
    return {
        "contacts": rows,
        "events": events,
        "events_per_s": round(events / elapsed),
        "server_cpu_us_per_event": round(1e6 * cpu_s / events, 1),
        "vendor_calls": stats["calls"],
        "calls_per_100_events": round(100 * stats["calls"] / events, 3),
    }


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="switchboard-history-") as tmp:
        count = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
        print(json.dumps(history_rate(Path(tmp), count)))
