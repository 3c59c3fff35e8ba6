"""What grows per call in a worker: tracemalloc snapshots diffed under the soak's mix.

`python -m bench.soak_memory [seconds] [rate]` builds one app in this process (the bench
configuration, a temporary database), drives the soak's mix at it through the loopback
port, takes a snapshot after a warm-up and another at the end, and prints the 15 source
lines whose allocations grew most between them, and the Python heap (traced) at each 30 s.
A leak shows as a line that grows with the number of calls; caches that fill up to their
bound show growth early and none later (compare two runs of different lengths).
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import grpc

from bench.soak import MIX, pick
from bench.soak_load import CHANNELS, Calls
from bench.targets import BENCH_CONFIG
from switchboard.server.app.build import build_app
from switchboard.server.config.settings import load_settings


async def drive(port: int, seconds: float, rate: float, contacts: int, on_tick: object) -> int:
    local = [("grpc.use_local_subchannel_pool", 1)]
    channels = [
        grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=local) for _ in range(CHANNELS)
    ]
    calls = Calls(channels, contacts)
    rng = random.Random(7)
    tasks: set[asyncio.Task[None]] = set()
    failed = 0

    async def one(method: str) -> None:
        nonlocal failed
        try:
            await calls.call(method, rng)
        except grpc.aio.AioRpcError:
            failed += 1

    n = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        task = asyncio.create_task(one(pick(MIX, rng.random())))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        n += 1
        if callable(on_tick):
            on_tick(elapsed)
        await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
    await asyncio.gather(*tasks, return_exceptions=True)
    for ch in channels:
        await ch.close()
    if failed:
        print(f"{failed} of {n} calls failed", flush=True)
    return n


async def main(seconds: float, rate: float) -> None:
    with tempfile.TemporaryDirectory(prefix="switchboard-mem-") as tmp:
        config = Path(tmp) / "bench.toml"
        config.write_text(BENCH_CONFIG)
        settings = load_settings(
            config,
            listen="127.0.0.1:0",
            database={"path": f"{tmp}/mem.db"},
            auth={"enabled": False},
            limits={"rate_per_s": 0},
            drain_period_s=0,
        )
        app = await build_app(settings)
        await app.start()
        try:
            contacts = 2000
            from bench.soak import _seed

            await _seed(app.port, contacts)
            await drive(app.port, min(30.0, seconds / 4), rate, contacts, None)  # warm-up
            tracemalloc.start(1)  # one frame: deeper traces slowed the app 3x
            first = tracemalloc.take_snapshot()
            marks = {"next": 30.0}

            def tick(elapsed: float) -> None:
                if elapsed >= marks["next"]:
                    current, _ = tracemalloc.get_traced_memory()
                    print(f"{elapsed:6.0f}s traced {current / 2**20:7.2f} MB", flush=True)
                    marks["next"] += 30.0

            calls = await drive(app.port, seconds, rate, contacts, tick)
            last = tracemalloc.take_snapshot()
        finally:
            await app.stop(grace_s=1.0)
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = last.filter_traces(filters).compare_to(first.filter_traces(filters), "lineno")
    print(f"\n{calls} calls in {seconds:.0f} s; top growth (bytes, blocks):")
    for stat in stats[:15]:
        print(f"{stat.size_diff:+10d} B {stat.count_diff:+7d}  {stat.traceback[0]}")


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:]]
    asyncio.run(main(args[0] if args else 180.0, args[1] if len(args) > 1 else 100.0))
