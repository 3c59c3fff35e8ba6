"""`switchboard serve` replicas, each its own process on a fixed loopback port."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.cluster.nginx import free_port

#: A test signing secret for the webhook connector (the peer does not check signatures).
SECRET = "whsec_" + base64.b64encode(b"c" * 32).decode()
#: The trigger the load sends: two webhook steps, so each run has two step keys.
EVENT = "cluster.demo"
STEPS = 2


@dataclass(frozen=True)
class ClusterConfig:
    """What every replica shares."""

    database_url: str
    redis_url: str
    hook_url: str
    rate_per_s: float
    lease_s: float = 3.0


def render_config(cfg: ClusterConfig) -> str:
    """The replicas' settings file (TOML)."""
    steps = ", ".join(
        f'{{ connector = "hook", action = "webhook.post", params = {{ step = {i} }} }}'
        for i in range(STEPS)
    )
    return f"""
[database]
url = "{cfg.database_url}"
pool_max = 10

[cache]
backend = "redis"
redis_url = "{cfg.redis_url}"

[connector_limits]
backend = "redis"

[dispatch]
poll_interval_s = 0.1
# A killed replica's claimed steps come back to the others after this long.
lease_s = {cfg.lease_s}

[connectors.hook]
kind = "webhook"
rate_per_s = {cfg.rate_per_s}
rate_burst = 1
max_concurrency = 8
options = {{ url = "{cfg.hook_url}", secret = "{SECRET}" }}

[triggers."{EVENT}"]
steps = [{steps}]
"""


class Replica:
    """One `switchboard serve` process; `kill` is kill -9, `start` brings it back on its port."""

    def __init__(self, name: str, config: Path, workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self._config = config
        self._log_path = workdir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        """Spawn the process and wait until it says it serves."""
        env = {
            **os.environ,
            "SWITCHBOARD_AUTH__ENABLED": "false",
            # The load is one caller sending as fast as it can; no per-caller limit.
            "SWITCHBOARD_LIMITS__RATE_PER_S": "0",
            "SWITCHBOARD_ACCESS_LOG": "false",
        }
        mark = self._log_path.stat().st_size if self._log_path.exists() else 0
        log = self._log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "switchboard.server.cli",
                "serve",
                "--config",
                str(self._config),
                "--listen",
                f"127.0.0.1:{self.port}",
                # One process per replica, so kill -9 of its pid takes the whole replica.
                "--workers",
                "1",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._wait_ready(mark, timeout_s)

    def _wait_ready(self, mark: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        needle = f"serving gRPC on 127.0.0.1:{self.port}".encode()
        while time.monotonic() < deadline:
            assert self.proc is not None
            with self._log_path.open("rb") as log:
                log.seek(mark)
                if needle in log.read():
                    return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{self.log_tail()}")

    def log_tail(self, chars: int = 1500) -> str:
        """The end of this replica's output, for error messages."""
        return self._log_path.read_text(errors="replace")[-chars:]

    @property
    def pid(self) -> int:
        """The process id (the replica must have been started)."""
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """kill -9 by pid: no drain, no goodbye, claimed steps stay leased."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        """SIGTERM by pid, then SIGKILL if it lingers."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
