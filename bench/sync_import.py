"""Import rate with and without contact sync: `python -m bench.sync_import [rows] [rounds]`.

Starts a real server in this process (its dispatcher delivering as it would in production),
imports `rows` new contacts through the client in batches of 1,000, and prints rows/s for the
import call itself and, with sync on, how long until every sync run was delivered, the end
to end rate (first row sent to empty outbox) and the process's CPU per contact over that
time (server and client share the process: compare with the `sync off` row). The server is
built from the defaults with `sync` either as configured by default or emptied.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from switchboard.client import Switchboard
from switchboard.server.app.build import build_app
from switchboard.server.config.settings import Settings, settings_for_tests


def _rows(n: int, tag: str) -> Any:
    for start in range(0, n, 1000):
        yield [
            {"email": f"{tag}-{i:07d}@example.com", "first_name": "Imp", "lists": ["imported"]}
            for i in range(start, min(n, start + 1000))
        ]


async def _drained(app: Any, deadline_s: float) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < deadline_s:
        if await app.store.read(lambda tx: tx.outbox_depth()) == 0:
            return time.perf_counter() - t0
        await asyncio.sleep(0.05)
    return float("nan")


async def one(settings: Settings, rows: int, tag: str) -> tuple[float, float, float]:
    """(import rows/s, seconds after the import until the outbox was empty, CPU seconds of
    the process from the first row until then)."""
    app = await build_app(settings)
    await app.start()
    try:
        async with Switchboard(f"127.0.0.1:{app.port}", timeout=None) as sb:
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            summary = await sb.contacts.import_(_rows(rows, tag))
            elapsed = time.perf_counter() - t0
        if summary.failed or summary.created != rows:
            raise RuntimeError(f"import went wrong: {summary}")
        drain = await _drained(app, 120.0)
        return rows / elapsed, drain, time.process_time() - cpu0
    finally:
        await app.stop(grace_s=1.0)


def main() -> None:
    rows = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    cases: dict[str, dict[str, Any]] = {"sync off": {"sync": {"destinations": {}}}, "default": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in cases.items():
            try:
                Settings(**overrides)
            except Exception:
                overrides = {}
            rates, drains, ends, cpus = [], [], [], []
            for r in range(rounds):
                db = Path(tmp) / f"{name.replace(' ', '_')}-{r}.db"
                got = asyncio.run(one(settings_for_tests(db, **overrides), rows, f"r{r}"))
                rate, drain, cpu_s = got
                rates.append(rate)
                drains.append(drain)
                ends.append(rows / (rows / rate + drain))
                cpus.append(1e6 * cpu_s / rows)
            print(
                f"{name:10} import {statistics.median(rates):8.0f} rows/s "
                f"(rounds: {', '.join(f'{x:.0f}' for x in rates)}); "
                f"outbox empty {statistics.median(drains):.2f}s after; "
                f"end to end {statistics.median(ends):.0f} contacts/s; "
                f"CPU {statistics.median(cpus):.0f} us/contact "
                f"(rounds: {', '.join(f'{x:.0f}' for x in cpus)})"
            )


if __name__ == "__main__":
    main()
