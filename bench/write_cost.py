"""Import cost on its own: `python -m bench.write_cost [rows] [rounds] [--sync-off]`.

Starts `switchboard serve --workers 1` (pinned like `make bench`'s `sb1`), imports `rows`
new contacts in batches of 1,000 (the rows of `make bench`'s `import_contacts_per_s`), then
imports them again (every row unchanged) and once more with a changed first name (every row
updated). Prints rows/s and the server's CPU time per row (psutil, its process tree): CPU
time per row moves far less than rows/s on a machine shared with other work. The CPU is
also split by thread: the event loop (the main thread: gRPC, validation, the dispatcher and
its store writes) and the others (mostly the store's commit thread: import parts, COMMITs).

Contact sync is on as in `make bench` (the embedded CRM, chunk runs delivered by the same
server while the import runs); `--sync-off` removes the destination, which shows what sync
adds to a row.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from bench.targets import (
    BENCH_CONFIG,
    BENCH_ENV,
    SERVER_CORES,
    Target,
    free_port,
    pin_load,
    serve_argv,
)
from switchboard.client import Switchboard


def _batches(rows: int, tag: str, name: str) -> Any:
    for start in range(0, rows, 1000):
        yield [
            {"email": f"{tag}-{i:07d}@example.com", "first_name": name, "lists": ["imported"]}
            for i in range(start, min(rows, start + 1000))
        ]


SYNC_OFF = "\n[sync.destinations]\ncrm = false\n"


def _cpu(target: Target) -> tuple[float, float]:
    """(CPU seconds of the server's process tree, of which its main threads)."""
    total = main = 0.0
    for pid in target.pids():
        proc = psutil.Process(pid)
        times = proc.cpu_times()
        total += times.user + times.system
        main += sum(t.user_time + t.system_time for t in proc.threads() if t.id == pid)
    return total, main


async def _import(port: int, rows: int, tag: str, name: str) -> float:
    async with Switchboard(f"127.0.0.1:{port}", timeout=None) as sb:
        t0 = time.perf_counter()
        summary = await sb.contacts.import_(_batches(rows, tag, name))
        elapsed = time.perf_counter() - t0
    if summary.failed or summary.received != rows:
        raise RuntimeError(f"import went wrong: {summary}")
    return elapsed


def measure(workdir: Path, rows: int, tag: str, sync: bool = True) -> dict[str, dict[str, float]]:
    """{case: {rows_per_s, server_cpu_us_per_row, loop_cpu_us_per_row}} for created,
    unchanged and updated rows."""
    config = workdir / "write_cost.toml"
    config.write_text(BENCH_CONFIG if sync else BENCH_CONFIG + SYNC_OFF)
    port = free_port()
    env = {"SWITCHBOARD_DATABASE__PATH": str(workdir / f"{tag}.db"), **BENCH_ENV}
    target = Target("write_cost", serve_argv(config, port, 1), port, env, cores=SERVER_CORES)
    out: dict[str, dict[str, float]] = {}
    try:
        target.wait_listening()
        for case, name in (("created", "Imp"), ("unchanged", "Imp"), ("updated", "Upd")):
            before, loop_before = _cpu(target)
            elapsed = asyncio.run(_import(port, rows, tag, name))
            after, loop_after = _cpu(target)
            out[case] = {
                "rows_per_s": round(rows / elapsed),
                "server_cpu_us_per_row": round((after - before) / rows * 1e6, 1),
                "loop_cpu_us_per_row": round((loop_after - loop_before) / rows * 1e6, 1),
            }
    finally:
        target.stop()
    return out


def main() -> None:
    args = [a for a in sys.argv[1:] if a != "--sync-off"]
    rows = int(args[0]) if args else 20_000
    rounds = int(args[1]) if len(args) > 1 else 3
    pin_load()
    runs: list[dict[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="switchboard-write-cost-") as tmp:
        for r in range(rounds):
            runs.append(measure(Path(tmp), rows, f"r{r}", sync="--sync-off" not in sys.argv))
    for case in runs[0]:
        rate = statistics.median(run[case]["rows_per_s"] for run in runs)
        cpu = statistics.median(run[case]["server_cpu_us_per_row"] for run in runs)
        loop = statistics.median(run[case]["loop_cpu_us_per_row"] for run in runs)
        print(
            f"import {case:10} {rate:8.0f} rows/s  {cpu:7.1f} server CPU us/row"
            f"  (event loop {loop:.1f}, other threads {cpu - loop:.1f})"
        )


if __name__ == "__main__":
    main()
