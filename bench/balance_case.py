"""How evenly `serve --workers 2` spreads 8 long-lived client connections, with and without
`keepalive.max_connection_age_ms`.

Each trial starts a fresh server, opens 8 channels (8 connections: a local subchannel pool
each), and keeps 4 GetContact calls in flight on every channel for `seconds`. Figures per
trial: the connections each worker holds (counted from the kernel's socket table
every half second, averaged over the trial), and each worker's share of the workers' CPU
time. `imbalance` is the busier worker's CPU share minus one half (0: even; 0.5: one
worker did everything); the case reports it per trial and as the mean over trials, since
SO_REUSEPORT places each connection by a hash of its addresses and ports, which differs
from one trial to the next.

Run: `python -m bench.balance_case [seconds] [trials] [age_ms | rr]`; `rr`: one port per
worker (`worker_listen`) and clients balancing calls over them (`round_robin`).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import grpc
import psutil

from bench.targets import BENCH_CONFIG, BENCH_ENV, Target, free_port, serve_argv
from switchboard.v1 import contacts_pb2

CLIENTS = 8
IN_FLIGHT = 4
GET = "/switchboard.v1.ContactSync/GetContact"


def _connections(pids: list[int], ports: set[int]) -> list[int]:
    """Connections each worker holds from clients (on the shared port or its own)."""
    counts = []
    for pid in pids:
        conns = psutil.Process(pid).net_connections("tcp")
        counts.append(
            sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr.port in ports)
        )
    return counts


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def _load(
    ports: set[int], seconds: float, sample: list[list[int]], pids: list[int], target: str
) -> int:
    request = contacts_pb2.UpsertContactRequest(
        contact=contacts_pb2.Contact(email="balance@example.com", first_name="B")
    )
    options: tuple[tuple[str, object], ...] = (("grpc.use_local_subchannel_pool", 1),)
    if target.startswith("ipv4:"):  # one address per worker: the client balances calls
        options = (*options, ("grpc.lb_policy_name", "round_robin"))
    channels = [grpc.aio.insecure_channel(target, options=options) for _ in range(CLIENTS)]
    calls = 0
    try:
        await channels[0].unary_unary("/switchboard.v1.ContactSync/UpsertContact")(
            request.SerializeToString(), timeout=10
        )
        get = contacts_pb2.GetContactRequest(email="balance@example.com").SerializeToString()
        stop_at = time.monotonic() + seconds

        async def caller(channel: grpc.aio.Channel) -> None:
            nonlocal calls
            call = channel.unary_unary(GET)
            while time.monotonic() < stop_at:
                try:
                    await call(get, timeout=10)
                    calls += 1
                except grpc.aio.AioRpcError as exc:
                    # A GOAWAY race may surface as UNAVAILABLE: the client library retries it.
                    if exc.code() != grpc.StatusCode.UNAVAILABLE:
                        raise

        async def sampler() -> None:
            while time.monotonic() < stop_at:
                await asyncio.sleep(0.5)
                sample.append(_connections(pids, ports))

        await asyncio.gather(sampler(), *(caller(ch) for ch in channels for _ in range(IN_FLIGHT)))
        sample.append(_connections(pids, ports))
    finally:
        for ch in channels:
            await ch.close()
    return calls


def trial(workdir: Path, seconds: float, age_ms: int, rr: bool = False) -> dict[str, object]:
    """One server, one load; see the module docstring. `rr`: the clients balance their
    calls over one port per worker (`worker_listen`, round_robin)."""
    config = workdir / "balance.toml"
    config.write_text(BENCH_CONFIG)
    db = workdir / "balance.db"
    port = free_port()
    env = {
        "SWITCHBOARD_DATABASE__PATH": str(db),
        **BENCH_ENV,
        "SWITCHBOARD_KEEPALIVE__MAX_CONNECTION_AGE_MS": str(age_ms),
        "SWITCHBOARD_KEEPALIVE__MAX_CONNECTION_AGE_GRACE_MS": "5000",
    }
    target = f"127.0.0.1:{port}"
    ports = {port}
    if rr:
        first = free_port()  # and the next one, free almost always
        env["SWITCHBOARD_WORKER_LISTEN"] = f"127.0.0.1:{first}"
        target = f"ipv4:127.0.0.1:{first},127.0.0.1:{first + 1}"
        ports |= {first, first + 1}
    server = Target("balance", serve_argv(config, port, workers=2), port, env)
    try:
        server.wait_listening()
        time.sleep(0.5)
        pids = [c.pid for c in psutil.Process(server.proc.pid).children()]
        before = [_cpu(p) for p in pids]
        sample: list[list[int]] = []
        calls = asyncio.run(_load(ports, seconds, sample, pids, target))
        used = [_cpu(p) - b for p, b in zip(pids, before, strict=True)]
    finally:
        server.stop()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    total = sum(used) or 1.0
    shares = [round(u / total, 3) for u in used]
    mean = [round(statistics.mean(s[i] for s in sample), 2) for i in range(len(pids))]
    return {
        "calls_per_s": round(calls / seconds),
        "connections_at_start": sample[0],
        "connections_mean": mean,
        "cpu_share": shares,
        "imbalance": round(max(shares) - 0.5, 3),
        "connection_imbalance": round(max(mean) / (sum(mean) or 1.0) - 0.5, 3),
    }


def balance(
    workdir: Path, seconds: float, trials: int, age_ms: int, rr: bool = False
) -> dict[str, object]:
    """`trials` trials with connection ageing at `age_ms` (0: off), or round robin."""
    runs = [trial(workdir, seconds, age_ms, rr) for _ in range(trials)]
    imbalance = [float(r["imbalance"]) for r in runs]  # type: ignore[arg-type]
    by_connections = [float(r["connection_imbalance"]) for r in runs]  # type: ignore[arg-type]
    return {
        "max_connection_age_ms": age_ms,
        "round_robin": rr,
        "mean_imbalance": round(statistics.mean(imbalance), 3),
        "worst_imbalance": max(imbalance),
        "mean_connection_imbalance": round(statistics.mean(by_connections), 3),
        "worst_connection_imbalance": max(by_connections),
        "trials": runs,
    }


if __name__ == "__main__":
    import tempfile

    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    trials = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    mode = sys.argv[3] if len(sys.argv) > 3 else "0"  # an age in ms, or "rr"
    with tempfile.TemporaryDirectory() as tmp:
        rr = mode == "rr"
        age = 0 if rr else int(mode)
        print(json.dumps(balance(Path(tmp), seconds, trials, age, rr), indent=2))
