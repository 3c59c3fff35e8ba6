"""Cache invalidations between the worker processes of one server.

Each worker caches contacts in its own memory. A write in one worker must drop the entry in
the others before the write is acknowledged, or a read served by a sibling could be stale.
The supervisor creates one UNIX datagram socket pair per worker before forking; a worker
sends the keys it invalidates to every sibling, and drains its own socket (non-blocking,
one syscall) before every cache lookup. The datagram is queued in the sibling's socket
before the writer answers, so any read that follows the answer sees the invalidation.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterable

log = logging.getLogger(__name__)
_MAX_DATAGRAM = 8192
_SEND_TIMEOUT_S = 1.0


class Siblings:
    """One worker's end: its receive socket and a send socket to each sibling."""

    def __init__(self, index: int, receive: socket.socket, peers: list[socket.socket]) -> None:
        self.index = index
        self._receive = receive
        self._peers = peers

    @classmethod
    def create(cls, workers: int) -> list[Siblings]:
        """All endpoints, created before forking; worker i keeps `result[i]`."""
        pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(workers)]
        for receive, send in pairs:
            receive.setblocking(False)
            send.settimeout(_SEND_TIMEOUT_S)
        return [
            cls(i, pairs[i][0], [send for j, (_, send) in enumerate(pairs) if j != i])
            for i in range(workers)
        ]

    def fileno(self) -> int:
        """The receive socket, for an event loop reader that drains between lookups."""
        return self._receive.fileno()

    def broadcast(self, keys: Iterable[str]) -> None:
        """Tell every sibling to drop these cache keys."""
        for chunk in _chunks([k.encode() for k in keys]):
            for peer in self._peers:
                try:
                    peer.send(chunk)
                except OSError:
                    # A sibling that stays unreadable for a second is stuck or gone; its
                    # entries expire with the cache TTL. Logged because it weakens freshness.
                    log.warning("could not send a cache invalidation to a sibling worker")

    def drain(self) -> list[str]:
        """Keys that siblings invalidated since the last drain."""
        keys: list[str] = []
        while True:
            try:
                data = self._receive.recv(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return keys
            keys.extend(k for k in data.decode().split("\n") if k)

    def close(self) -> None:
        """Close this endpoint's sockets."""
        for sock in (self._receive, *self._peers):
            with contextlib.suppress(OSError):
                sock.close()


def _chunks(keys: list[bytes]) -> Iterable[bytes]:
    batch: list[bytes] = []
    size = 0
    for key in keys:
        if batch and size + len(key) + 1 > _MAX_DATAGRAM:
            yield b"\n".join(batch)
            batch, size = [], 0
        batch.append(key)
        size += len(key) + 1
    if batch:
        yield b"\n".join(batch)
