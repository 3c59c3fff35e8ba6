"""A throwaway redis-server on 127.0.0.1, started and stopped by the tests themselves."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

_INSTALL = "apt-get update -qq && apt-get install -y -qq redis-server"


def find_redis_server() -> tuple[str | None, str]:
    """The redis-server binary, installing the Debian package when root; else (None, why)."""
    found = shutil.which("redis-server")
    if found:
        return found, ""
    if os.geteuid() != 0:
        return None, "redis-server is not on PATH (and not root, so not installing it)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(
        _INSTALL, shell=True, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    found = shutil.which("redis-server")
    if found:
        return found, ""
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return None, f"could not install redis-server ({_INSTALL!r}: {tail[0]})"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One redis-server process: no persistence, loopback only, in its own directory."""

    def __init__(self, binary: str, workdir: Path, port: int | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or _free_port()
        self._log = (workdir / "redis.log").open("w")
        self.proc = subprocess.Popen(
            [
                binary,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_for_ping(workdir, timeout_s=10.0)

    @property
    def url(self) -> str:
        """The `cache.redis_url` for this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        """A synchronous client, to inspect what the server stores."""
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2.0)

    def _wait_for_ping(self, workdir: Path, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        with self.client() as probe:
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    if probe.ping():
                        return
                except redis.ConnectionError:
                    time.sleep(0.02)
        self.stop()
        log = (workdir / "redis.log").read_text()[-500:]
        raise RuntimeError(f"redis-server did not answer PING on port {self.port}:\n{log}")

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): connections hang, data stays."""
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo `pause`."""
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        """Terminate by pid and reap; safe to call twice."""
        if self.proc.poll() is None:
            self.resume()  # a frozen process cannot handle SIGTERM
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
