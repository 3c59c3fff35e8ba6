"""Wake-ups between the processes of one machine sharing a store: api and dispatch roles.

An api process (`serve --role api`) commits outbox rows that a dispatch process delivers;
without a nudge the dispatcher would find them at its next poll (`dispatch.poll_interval_s`,
0.5 s by default). And a dispatch process ends runs that a TriggerCampaign waiting in an
api process watches; without a nudge that caller would see the end at its next watch poll.

Each process binds one UNIX datagram socket in a directory named after the store (a hash of
the SQLite path or the PostgreSQL URL), named `<role>-<pid>.sock`. A nudge is one datagram,
sent without blocking to every socket of the other role: an empty one means "look at the
outbox", a non-empty one names runs that changed. A full socket buffer drops the datagram,
which is harmless: the receiver is already awake with nudges queued, and both sides still
poll. The socket of a process that died without cleaning up refuses datagrams
(ECONNREFUSED) and is removed by the first sender that finds it.

On PostgreSQL, LISTEN/NOTIFY (`store/postgres/listen.py`) also wakes dispatchers on other
machines; these sockets only reach processes on this one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)
Role = Literal["api", "dispatch"]
_MAX_DATAGRAM = 4096
_LIST_EVERY_S = 1.0  # how stale the list of peer sockets may be (a new peer waits this long)


def nudge_directory(store_identity: str, base: Path | None = None) -> Path:
    """The directory where the processes of one store meet: short, so that socket paths
    stay under the 108-byte limit of a UNIX socket address."""
    digest = hashlib.sha256(store_identity.encode()).hexdigest()[:16]
    return (base or Path(tempfile.gettempdir())) / f"switchboard-{os.getuid()}-{digest}"


class Nudges:
    """This process's socket in the store's nudge directory, and its sends to the others.

    `on_outbox` runs (on the event loop) when an api process queued steps; `on_runs` with
    the ids of runs a dispatch process changed.
    """

    def __init__(
        self,
        directory: Path,
        role: Role,
        on_outbox: Callable[[], None] | None = None,
        on_runs: Callable[[list[str]], None] | None = None,
    ) -> None:
        self._directory = directory
        self._role = role
        self._on_outbox = on_outbox
        self._on_runs = on_runs
        self._path = directory / f"{role}-{os.getpid()}.sock"
        self._sock: socket.socket | None = None
        self._peers: list[str] = []
        self._listed_at = float("-inf")
        self._outbox_pending = False
        self._runs_pending: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def path(self) -> Path:
        """This process's socket."""
        return self._path

    def open(self) -> None:
        """Bind this process's socket and read it on the running event loop."""
        self._directory.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()  # a socket left by a process with our pid that died
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(str(self._path))
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._receive)

    def close(self) -> None:
        """Stop reading and remove this process's socket."""
        if self._sock is None:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._sock.fileno())
        self._sock.close()
        self._sock = None
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()

    def outbox_changed(self) -> None:
        """Tell dispatch processes to look at the outbox (once per loop turn, however many
        commits asked)."""
        if not self._outbox_pending and self._loop is not None:
            self._outbox_pending = True
            self._loop.call_soon(self._flush_outbox)

    def run_changed(self, run_id: str) -> None:
        """Tell api processes that `run_id` changed (batched per loop turn)."""
        if self._loop is None:
            return
        if not self._runs_pending:
            self._loop.call_soon(self._flush_runs)
        self._runs_pending.append(run_id)

    def _flush_outbox(self) -> None:
        self._outbox_pending = False
        self._send("dispatch", b"")

    def _flush_runs(self) -> None:
        runs, self._runs_pending = self._runs_pending, []
        chunk: list[bytes] = []
        size = 0
        for run_id in dict.fromkeys(runs):
            data = run_id.encode()
            if chunk and size + len(data) + 1 > _MAX_DATAGRAM:
                self._send("api", b"\n".join(chunk))
                chunk, size = [], 0
            chunk.append(data)
            size += len(data) + 1
        if chunk:
            self._send("api", b"\n".join(chunk))

    def _send(self, role: Role, data: bytes) -> None:
        sock = self._sock
        if sock is None:
            return
        for peer in self._peers_of(role):
            try:
                sock.sendto(data, peer)
            except (BlockingIOError, InterruptedError):
                pass  # the peer's buffer is full of nudges already
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    # A process that died without closing: nobody reads this socket.
                    with contextlib.suppress(OSError):
                        os.unlink(peer)
                    self._listed_at = float("-inf")
                else:
                    log.warning("cannot nudge %s: %s", peer, exc)

    def _peers_of(self, role: Role) -> list[str]:
        now = time.monotonic()
        if now - self._listed_at > _LIST_EVERY_S:
            try:
                names = os.listdir(self._directory)
            except OSError:
                names = []
            own = self._path.name
            self._peers = [str(self._directory / n) for n in names if n != own]
            self._listed_at = now
        prefix = str(self._directory / f"{role}-")
        return [p for p in self._peers if p.startswith(prefix)]

    def _receive(self) -> None:
        sock = self._sock
        outbox = False
        runs: list[str] = []
        while sock is not None:
            try:
                data = sock.recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            if data:
                runs.extend(r for r in data.decode().split("\n") if r)
            else:
                outbox = True
        if outbox and self._on_outbox is not None:
            self._on_outbox()
        if runs and self._on_runs is not None:
            self._on_runs(runs)
