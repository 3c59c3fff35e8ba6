"""A throwaway PostgreSQL server on 127.0.0.1, started and stopped by the tests themselves.

The binaries come from Debian's `postgresql` package (`make test` installs it when missing;
`find_postgres` does too, when root). PostgreSQL refuses to run as root, so as root the
data directory belongs to `nobody` and the server runs as that user (the child process
drops its uid before exec, so the pid we hold is the server's own). Durability is off
(`fsync`, `synchronous_commit`): the data is thrown away at the end; the soak
(bench/soak_postgres.py) asks for a durable one.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg import sql

_INSTALL = "apt-get update -qq && apt-get install -y -qq postgresql"
_UNPRIVILEGED = "nobody"


def _bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    return str(Path(found[-1]).parent) if found else None


def _major(path: str) -> int:
    version = Path(path).parent.parent.name
    return int(version) if version.isdigit() else 0


def find_postgres() -> tuple[str | None, str]:
    """The directory of initdb and postgres, installing the package when root; else why not."""
    found = _bindir()
    if found:
        return found, ""
    if os.geteuid() != 0:
        return None, "PostgreSQL (Debian package postgresql) is not installed and not root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    done = subprocess.run(
        _INSTALL, shell=True, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    found = _bindir()
    if found:
        return found, ""
    tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
    return None, f"could not install PostgreSQL ({_INSTALL!r}: {tail[0]})"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Tests throw the data away: no flushes. `durable=True` (the soak) keeps the defaults.
_THROWAWAY = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")


class PostgresServer:
    """One `postgres` process with a fresh cluster in a temporary directory."""

    def __init__(self, bindir: str, durable: bool = False) -> None:
        self._root = Path(tempfile.mkdtemp(prefix="switchboard-pg-"))
        data = self._root / "data"
        self.port = _free_port()
        user: str | None = None
        if os.geteuid() == 0:
            user = _UNPRIVILEGED
            entry = pwd.getpwnam(user)
            os.chown(self._root, entry.pw_uid, entry.pw_gid)
        self._user = user
        self._log_path = self._root / "postgres.log"
        self._run(
            [
                f"{bindir}/initdb",
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        )
        log = self._log_path.open("w")
        self.proc = subprocess.Popen(
            [
                f"{bindir}/postgres",
                "-D",
                str(data),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-k",
                str(self._root),
                *(() if durable else _THROWAWAY),
                "-c",
                "max_connections=200",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            user=user,
            cwd=self._root,
        )
        log.close()
        self._wait_until_ready(timeout_s=30.0)
        self._counter = 0

    def _run(self, argv: list[str]) -> None:
        done = subprocess.run(
            argv, user=self._user, cwd=self._root, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr or done.stdout}")

    def url(self, dbname: str = "postgres") -> str:
        """A `database.url` for `dbname` on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def _wait_until_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                with psycopg.connect(self.url(), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                time.sleep(0.05)
        self.stop()
        log = self._log_path.read_text()[-800:] if self._log_path.exists() else ""
        raise RuntimeError(f"postgres did not accept connections on port {self.port}:\n{log}")

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; returns its URL."""
        self._counter += 1
        name = f"{prefix}_{os.getpid()}_{self._counter}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of our own process by pid, then remove its files."""
        if self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self._root, ignore_errors=True)
