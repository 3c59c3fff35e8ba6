"""The per-call floor: grpc.aio server options tried on the bare echo server.

`python -m bench.floor` starts one echo server per variant (event loop, gRPC core channel
arguments, poller environment), all on the server core, and runs the same closed-loop load
against each in alternation, round after round. The figure compared is server CPU time per
call (psutil), which the other load on a shared machine barely moves; requests/s is shown
but is noise on a loaded machine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench.__main__ import py_load, seed, wait_idle
from bench.targets import (
    BENCH_CONFIG,
    BENCH_ENV,
    SERVER_CORES,
    Target,
    free_port,
    pin_load,
    serve_argv,
)

ROUNDS = int(os.environ.get("FLOOR_ROUNDS", "3"))

# name -> (uvloop, channel arguments, extra environment)
VARIANTS: dict[str, tuple[bool, list[str], dict[str, str]]] = {
    "uvloop (baseline)": (True, [], {}),
    "asyncio loop": (False, [], {}),
    "optimization_target=throughput": (True, ["grpc.optimization_target=throughput"], {}),
    "optimization_target=latency": (True, ["grpc.optimization_target=latency"], {}),
    "bdp_probe=0": (True, ["grpc.http2.bdp_probe=0"], {}),
    "so_reuseport=0": (True, ["grpc.so_reuseport=0"], {}),
    "max message 64 KiB": (
        True,
        ["grpc.max_receive_message_length=65536", "grpc.max_send_message_length=65536"],
        {},
    ),
    "GRPC_POLL_STRATEGY=poll": (True, [], {"GRPC_POLL_STRATEGY": "poll"}),
}


def start(name: str, uvloop: bool, options: list[str], env: dict[str, str]) -> Target:
    port = free_port()
    argv = [sys.executable, "-m", "bench.echo_server", "--port", str(port)]
    argv += ["--uvloop"] if uvloop else []
    for option in options:
        argv += ["--option", option]
    target = Target(name, argv, port, env, cores=SERVER_CORES)
    target.wait_listening()
    return target


def start_switchboard(name: str, workdir: Path, env: dict[str, str]) -> Target:
    """`switchboard serve` (one worker, seeded) with the variant's environment."""
    config = workdir / "bench.toml"
    config.write_text(BENCH_CONFIG)
    port = free_port()
    db = str(workdir / f"{len(list(workdir.iterdir()))}.db")
    env = {**BENCH_ENV, "SWITCHBOARD_DATABASE__PATH": db, **env}
    target = Target(name, serve_argv(config, port, workers=1), port, env, cores=SERVER_CORES)
    target.wait_listening()
    asyncio.run(seed(port))
    return target


def main() -> None:
    """`python -m bench.floor [variant ...]`; FLOOR_KIND=get_contact runs `switchboard serve`
    instead of the echo server (environment variants only: its options come from settings)."""
    pin_load()
    wanted = sys.argv[1:] or list(VARIANTS)
    kind = os.environ.get("FLOOR_KIND", "echo")
    workdir = Path(tempfile.mkdtemp(prefix="switchboard-floor-"))
    if kind == "echo":
        targets = {name: start(name, *VARIANTS[name]) for name in wanted}
    else:
        targets = {name: start_switchboard(name, workdir, VARIANTS[name][2]) for name in wanted}
    cpu: dict[str, list[float]] = {}
    rps: dict[str, list[float]] = {}
    try:
        for round_ in range(ROUNDS):
            order = list(targets.items())
            order = order if round_ % 2 == 0 else order[::-1]
            for name, target in order:
                result = py_load("bench.load_grpc", f"127.0.0.1:{target.port}", kind, 64, target)
                cpu.setdefault(name, []).append(result["server_cpu_us_per_call"])
                rps.setdefault(name, []).append(result["rps"])
                wait_idle(targets)
                print(f"round {round_ + 1} {name}: {cpu[name][-1]:.1f} us/call", file=sys.stderr)
    finally:
        for target in targets.values():
            target.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    base = statistics.median(cpu[wanted[0]])
    print(f"{'variant':34} {'CPU us/call':>12} {'vs first':>9} {'req/s':>8}  rounds (us)")
    for name in wanted:
        med = statistics.median(cpu[name])
        rounds = " ".join(f"{v:.0f}" for v in cpu[name])
        print(
            f"{name:34} {med:12.1f} {med / base:9.3f} {statistics.median(rps[name]):8.0f}  {rounds}"
        )


if __name__ == "__main__":
    main()
