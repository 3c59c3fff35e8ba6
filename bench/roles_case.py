"""The roles case: TriggerCampaign accepted/s and steps delivered/s, role split against all.

Two layouts of `serve --workers 2` on a fresh SQLite file each: `all` (both workers serve
and deliver, today's default) and `split` (`dispatch.processes = 1`: one worker serves, one
delivers). For each: closed-loop TriggerCampaign load (`bench.load_grpc`, 64 in flight) of a
one-step trigger to the in-memory `fake` connector, then

- `accepted_per_s`: triggers answered per second during the load;
- `delivered_per_s`: steps delivered per second, from the load's start until the outbox is
  empty (delivery that lags behind the load counts against it);
- `backlog_at_end`: steps still queued when the load stopped;
- `accept_to_done_ms`: median of 40 one-at-a-time triggers with `wait_for_completion`, from
  the call to its answer with the run ended (the nudge across processes is in this path);
- `cpu_s_serving` / `cpu_s_delivering`: CPU seconds of the serving and the delivering
  workers over load and drain (for `all`, both workers count as serving).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import statistics
import subprocess
import sys
import time
from pathlib import Path

import grpc
import psutil

from bench.targets import BENCH_CONFIG, BENCH_ENV, Target, free_port, serve_argv
from switchboard.v1 import campaigns_pb2, campaigns_pb2_grpc, contacts_pb2

LAYOUTS = {"all": "0", "split": "1"}


def _outbox(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return int(conn.execute("SELECT count(*) FROM outbox").fetchone()[0])


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


async def _latency(port: int, count: int) -> float:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = campaigns_pb2_grpc.CampaignTriggersStub(ch)
        took = []
        for i in range(count):
            req = campaigns_pb2.TriggerCampaignRequest(
                event="bench.noop",
                contact=contacts_pb2.Contact(email=f"latency-{i}@example.com"),
                wait_for_completion=True,
            )
            t0 = time.perf_counter()
            run = (await stub.TriggerCampaign(req, timeout=10)).run
            took.append(time.perf_counter() - t0)
            if run.status != campaigns_pb2.RUN_STATUS_SUCCEEDED:
                raise RuntimeError(f"roles case: run ended {run.status}")
        return 1000 * statistics.median(took)


def _layout(workdir: Path, name: str, processes: str, seconds: float) -> dict[str, float]:
    config = workdir / "roles.toml"
    config.write_text(BENCH_CONFIG)
    db = workdir / f"roles-{name}.db"
    port = free_port()
    env = {
        "SWITCHBOARD_DATABASE__PATH": str(db),
        **BENCH_ENV,
        "SWITCHBOARD_DISPATCH__PROCESSES": processes,
    }
    server = Target(f"roles-{name}", serve_argv(config, port, workers=2), port, env)
    try:
        server.wait_listening()
        time.sleep(1.5)  # workers list each other's wake-up sockets
        workers = psutil.Process(server.proc.pid).children()
        delivering = [w.pid for w in workers if not _listens(w, port)]
        serving = [w.pid for w in workers if w.pid not in delivering]
        cpu_before = _cpu(serving), _cpu(delivering)
        started = time.perf_counter()
        out = subprocess.run(
            [
                *(sys.executable, "-m", "bench.load_grpc", f"127.0.0.1:{port}"),
                *("trigger_campaign", "--concurrency", "64", "--seconds", str(seconds)),
                *("--warmup", "0"),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        ).stdout
        load = json.loads(out)
        backlog = _outbox(db)
        while _outbox(db):
            time.sleep(0.02)
        drained = time.perf_counter() - started
        cpu_serving = _cpu(serving) - cpu_before[0]
        cpu_delivering = _cpu(delivering) - cpu_before[1]
        accepted = int(load["calls_total"])
        latency = asyncio.run(_latency(port, 40))
    finally:
        server.stop()
    return {
        "accepted_per_s": round(load["rps"]),
        "delivered_per_s": round(accepted / drained),
        "backlog_at_end": backlog,
        "accept_p50_ms": round(load["p50_ms"], 2),
        "accept_p99_ms": round(load["p99_ms"], 2),
        "accept_to_done_ms": round(latency, 2),
        "cpu_s_serving": round(cpu_serving, 2),
        "cpu_s_delivering": round(cpu_delivering, 2),
    }


def _listens(proc: psutil.Process, port: int) -> bool:
    return any(
        c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in proc.net_connections("tcp")
    )


def roles_rates(workdir: Path, seconds: float, rounds: int = 1) -> dict[str, dict[str, float]]:
    """Medians over `rounds` of each layout, measured in alternation."""
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in LAYOUTS}
    for _ in range(rounds):
        for name, processes in LAYOUTS.items():
            samples[name].append(_layout(workdir, name, processes, seconds))
            (workdir / f"roles-{name}.db").unlink(missing_ok=True)
    return {
        name: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        for name, runs in samples.items()
    }


if __name__ == "__main__":  # python -m bench.roles_case [seconds] [rounds]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
        rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 1
        print(json.dumps(roles_rates(Path(tmp), seconds, rounds), indent=2))
