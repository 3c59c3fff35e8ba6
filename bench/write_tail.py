"""The store's write tail alone: N processes writing to one SQLite file, open loop.

`python -m bench.write_tail [--procs 2] [--seconds 20] [--rate 100] [--bulk-rate 5]
[--bulk-cpu-ms MS] [--checkpoint-interval S] [--server-path CHECKOUT]` starts `procs`
processes; each opens a `SqliteStore` on the shared file and, for `seconds`, submits `rate`
small interactive writes a second (a few rows each, like an upsert with its event and outbox
row) and `bulk-rate` bulk jobs of 100 rows a second (like an import chunk; `--bulk-cpu-ms`
adds that much Python work per job, as a real chunk's per-row work), on a fixed schedule.
It prints the
interactive writes' p50/p99/max (ms, from the scheduled time) over all processes, and the
CPU seconds the processes used. No gRPC, no client: what is left is the writer itself
(group commit, bulk jobs, the hand-off between processes, checkpoints), so the figure moves
little with other load on the machine. `--server-path` runs another checkout's store code,
for before/after.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.soak import percentile, writer_components


async def _child(
    path: str, seconds: float, rate: float, bulk_rate: float, ckpt: str, bulk_cpu_ms: float
) -> None:
    from switchboard.server.config.sections import DatabaseSettings
    from switchboard.server.store.sqlite.store import SqliteStore

    extra: dict[str, Any] = {"checkpoint_interval_s": float(ckpt)} if ckpt else {}
    store = SqliteStore(DatabaseSettings(path=path, busy_timeout_ms=30_000, **extra))
    await store.open()
    pid = os.getpid()
    latencies: list[float] = []
    payload = {"first_name": "x" * 40, "attributes": {"k": "v" * 80}}

    async def interactive(i: int, scheduled: float) -> None:
        def work(tx: Any) -> None:
            for j in range(4):
                tx.state_put("bench", f"r{pid}", f"{i % 5000}-{j}", payload)

        await store.write(work)
        latencies.append(time.perf_counter() - scheduled)

    async def bulk(i: int) -> None:
        def work(tx: Any) -> None:
            for j in range(100):
                tx.state_put("bench", f"b{pid}", f"{(i * 100 + j) % 20000}", payload)
            # An import chunk's Python work per row (validation, events), holding the GIL.
            until = time.perf_counter() + bulk_cpu_ms / 1e3
            while time.perf_counter() < until:
                pass

        await store.write(work, bulk=True)

    tasks: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    n = b = 0
    while time.perf_counter() - start < seconds:
        next_i = start + n / rate
        next_b = start + b / bulk_rate if bulk_rate else float("inf")
        at = min(next_i, next_b)
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        if next_i <= next_b:
            task = asyncio.create_task(interactive(n, next_i))
            n += 1
        else:
            task = asyncio.create_task(bulk(b))
            b += 1
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    await asyncio.gather(*tasks)
    writer = getattr(store, "_writer", None)  # older store code has no stats
    stats = writer.stats.take() if hasattr(writer, "stats") else {}
    await store.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"lat": latencies, "cpu_s": usage.ru_utime + usage.ru_stime, "w": stats}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--bulk-rate", type=float, default=5.0)
    parser.add_argument("--checkpoint-interval", default="")
    parser.add_argument("--bulk-cpu-ms", type=float, default=0.0)
    parser.add_argument("--server-path", default="")
    parser.add_argument("--child", default="")
    args = parser.parse_args()
    if args.child:
        asyncio.run(
            _child(
                args.child,
                args.seconds,
                args.rate,
                args.bulk_rate,
                args.checkpoint_interval,
                args.bulk_cpu_ms,
            )
        )
        return
    env = dict(os.environ)
    if args.server_path:
        env["PYTHONPATH"] = f"{args.server_path}/server:{args.server_path}/client"
    with tempfile.TemporaryDirectory(prefix="switchboard-writes-") as tmp:
        path = str(Path(tmp) / "w.db")
        # Create the schema once, so that the processes do not race to migrate.
        subprocess.run(
            [sys.executable, "-m", "bench.write_tail", "--child", path, "--seconds", "0"],
            env=env,
            check=True,
            capture_output=True,
        )
        argv = [
            sys.executable, "-m", "bench.write_tail", "--child", path,
            "--seconds", str(args.seconds), "--rate", str(args.rate),
            "--bulk-rate", str(args.bulk_rate),
            "--checkpoint-interval", args.checkpoint_interval,
            "--bulk-cpu-ms", str(args.bulk_cpu_ms),
        ]  # fmt: skip
        procs = [
            subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, text=True)
            for _ in range(args.procs)
        ]
        outs = [json.loads(p.communicate()[0]) for p in procs]
    lat = [x for o in outs for x in o["lat"]]
    print(
        json.dumps(
            {
                "writes": len(lat),
                "p50_ms": round(percentile(lat, 50) * 1e3, 2),
                "p99_ms": round(percentile(lat, 99) * 1e3, 2),
                "max_ms": round(max(lat, default=0.0) * 1e3, 2),
                "cpu_s": round(sum(o["cpu_s"] for o in outs), 2),
                "load1": round(os.getloadavg()[0], 2),
                "writer": writer_components([{"writer": o.get("w", {})} for o in outs]),
            }
        )
    )


if __name__ == "__main__":
    main()
