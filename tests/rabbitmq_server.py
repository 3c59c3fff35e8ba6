"""A throwaway RabbitMQ broker on 127.0.0.1, started and stopped by the tests themselves.

Everything it writes stays in its own directory: node data (RABBITMQ_MNESIA_BASE), logs,
the Erlang cookie (HOME), an empty plugin list and config. Its node name, AMQP port,
distribution port and its own `epmd` (ERL_EPMD_PORT) are unique, so it neither meets a
system broker nor another test run. `make test` installs the Debian package; here it is
installed when missing and running as root, as `tests/redis_server.py` does for Redis.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

_INSTALL = "apt-get update -qq && apt-get install -y -qq rabbitmq-server"
# The broker's own start script: the /usr/sbin wrapper would switch to the rabbitmq user,
# which cannot write the test's directory.
_SERVER_SCRIPT = "/usr/lib/rabbitmq/bin/rabbitmq-server"
_AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def find_rabbitmq_server() -> tuple[str | None, str]:
    """The broker's start script, installing the Debian package when root; else (None, why)."""
    if os.access(_SERVER_SCRIPT, os.X_OK):
        return _SERVER_SCRIPT, ""
    if os.geteuid() != 0:
        return None, "rabbitmq-server is not installed (and not root, so not installing it)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(
        _INSTALL, shell=True, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    if os.access(_SERVER_SCRIPT, os.X_OK):
        return _SERVER_SCRIPT, ""
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return None, f"could not install rabbitmq-server ({_INSTALL!r}: {tail[0]})"


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RabbitMQServer:
    """One broker node; `stop()` and `start()` again keep its port, name and data."""

    def __init__(self, script: str, workdir: Path) -> None:
        self._script = script
        self._dir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        epmd_port = free_port()
        (workdir / "enabled_plugins").write_text("[].\n")
        (workdir / "rabbitmq.conf").write_text("")
        (workdir / "rabbitmq-env.conf").write_text("")
        self._env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "HOME": str(workdir),
            "LANG": "C.UTF-8",
            "RABBITMQ_CONF_ENV_FILE": str(workdir / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(workdir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(workdir / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(workdir / "plugins-expand"),
            "RABBITMQ_MNESIA_BASE": str(workdir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(workdir / "log"),
            "RABBITMQ_LOGS": "-",
            "RABBITMQ_NODENAME": f"sbtest{os.getpid()}x{self.port}@localhost",
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(epmd_port),
        }
        epmd = shutil.which("epmd") or "epmd"
        # Our own epmd in the foreground, so it is stopped by its pid (Erlang would otherwise
        # start a daemon that outlives the broker).
        self._epmd = subprocess.Popen(
            [epmd, "-port", str(epmd_port)], env=self._env, stderr=subprocess.DEVNULL
        )
        self._log = (workdir / "rabbitmq.log").open("a")
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        """The connector's `url` (the default guest user, allowed from loopback)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the node and wait until it answers the AMQP protocol header."""
        # Its own session: the start script and the Erlang VM it runs form one group that a
        # last-resort kill can reach without touching anything else.
        self.proc = subprocess.Popen(
            [self._script],
            env=self._env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self._answers():
                return
            time.sleep(0.2)
        self.stop()
        tail = (self._dir / "rabbitmq.log").read_text()[-800:]
        raise RuntimeError(f"rabbitmq-server did not answer on port {self.port}:\n{tail}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
                sock.sendall(_AMQP_HEADER)
                frame = sock.recv(7)
        except OSError:
            return False
        return frame[:1] == b"\x01"  # a method frame: connection.start

    def stop(self) -> None:
        """Stop the node (SIGTERM to its start script, which stops the VM); keep its data."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def close(self) -> None:
        """Stop the node and its epmd; safe to call twice."""
        self.stop()
        if self._epmd.poll() is None:
            self._epmd.terminate()
            self._epmd.wait(timeout=10)
        self._log.close()
