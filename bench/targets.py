"""Start and stop the benchmark's servers as child processes, by their process id."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH_CONFIG = """
[connectors.fake]
kind = "fake"

[triggers."bench.noop"]
description = "One in-memory step: measures accepting a trigger, not a vendor."
[[triggers."bench.noop".steps]]
connector = "fake"
action = "echo"
"""


# Authentication and the per-caller rate limit would measure the limiter, not the service:
# the load clients send no key, and one caller makes thousands of calls a second.
# BENCH_LOG_LEVEL=INFO measures the servers with their per-call access log lines on.
BENCH_ENV = {
    "SWITCHBOARD_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
    "SWITCHBOARD_AUTH__ENABLED": "false",
    "SWITCHBOARD_LIMITS__RATE_PER_S": "0",
}


def serve_argv(config: Path, port: int, workers: int) -> list[str]:
    """`switchboard serve` with the bench configuration on 127.0.0.1:`port`."""
    return [
        sys.executable,
        "-m",
        "switchboard.server.cli",
        "serve",
        "--config",
        str(config),
        "--listen",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
    ]


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# On 2+ cores, one-process servers run on core 0 and the load generators on core 1 (see
# `pin_load`). Unpinned, the scheduler sometimes put server and client on one core: the echo
# server's requests/s moved between 7,000 and 9,300 from one round to the next. BENCH_PIN=0
# leaves placement to the scheduler (a server's helper threads, such as the store's commit
# thread, can then run on the other core; see docs/performance.md for both).
PINNED = (os.cpu_count() or 1) >= 2 and os.environ.get("BENCH_PIN", "1") != "0"
SERVER_CORES = {0}
LOAD_CORES = {1}


def pin_load() -> None:
    """Keep this process and the load generators it starts on the load core."""
    if PINNED:
        os.sched_setaffinity(0, LOAD_CORES)


class Target:
    """One server process under test; `cores` pins it (and its threads) to those cores."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        port: int,
        env: dict[str, str] | None = None,
        cores: set[int] | None = None,
        log: Path | None = None,
    ):
        self.name = name
        self.port = port
        wanted = cores if PINNED and cores else None
        err = log.open("ab") if log else None  # the soak reads the servers' log lines
        self.proc = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=err or subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, wanted)) if wanted else None,
        )
        if err:
            err.close()

    def wait_listening(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not listen on {self.port}")

    def pids(self) -> list[int]:
        """The process and its workers."""
        import psutil

        root = psutil.Process(self.proc.pid)
        return [root.pid, *(c.pid for c in root.children(recursive=True))]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_all(workdir: Path) -> dict[str, Target]:
    """The echo ceiling, Switchboard with 1 and 2 workers, and the REST baseline.

    `sb1` and the REST app share one SQLite file, so that they serve the same rows. `sb2` has
    a file of its own: its dispatchers would otherwise claim and deliver the steps that
    `sb1`'s TriggerCampaign case queues, and compete with `sb1` for the write lock.
    """
    config = workdir / "bench.toml"
    config.write_text(BENCH_CONFIG)
    db = str(workdir / "bench.db")
    py = sys.executable
    env = {"SWITCHBOARD_DATABASE__PATH": db, **BENCH_ENV}
    env2 = {**env, "SWITCHBOARD_DATABASE__PATH": str(workdir / "bench-workers2.db")}
    ports = {name: free_port() for name in ("echo", "sb1", "sb2", "rest")}
    targets = {
        "echo": Target(
            "echo",
            [py, "-m", "bench.echo_server", "--port", str(ports["echo"]), "--uvloop"],
            ports["echo"],
            cores=SERVER_CORES,
        ),
        "sb1": Target(
            "sb1",
            serve_argv(config, ports["sb1"], workers=1),
            ports["sb1"],
            env,
            cores=SERVER_CORES,
        ),
        "sb2": Target(
            "sb2",
            serve_argv(config, ports["sb2"], workers=2),
            ports["sb2"],
            env2,
            cores=SERVER_CORES | LOAD_CORES,  # two workers: both cores, shared with the load
        ),
        "rest": Target(
            "rest",
            [py, "-m", "bench.rest_server", "--port", str(ports["rest"]), "--db", db],
            ports["rest"],
            cores=SERVER_CORES,
        ),
    }
    try:
        for target in targets.values():
            target.wait_listening()
    except BaseException:
        for target in targets.values():  # never leave a started server behind
            target.stop()
        raise
    return targets
