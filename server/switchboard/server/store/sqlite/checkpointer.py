"""WAL checkpoints off the write path: a PASSIVE checkpoint from a thread of its own.

By default SQLite checkpoints inside the COMMIT that takes the log past
`wal_autocheckpoint` pages (1000, ~4 MB): that commit copies the log into the database file
and fsyncs it before it returns, and every write acknowledged by that commit (a whole group
of callers) waits for it, while the worker's next batch waits behind it. The write
connection turns automatic checkpoints off (`AUTOCHECKPOINT_OFF`) and this thread runs
`PRAGMA wal_checkpoint(PASSIVE)` every interval instead: PASSIVE never waits for writers or
readers (it copies what it can), so a checkpoint no longer sits in any caller's latency.
Each worker process runs one; SQLite lets only one checkpoint run at a time, and the other
simply finds nothing left to copy.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

AUTOCHECKPOINT_OFF = "PRAGMA wal_autocheckpoint = 0"


class Checkpointer:
    """Runs a PASSIVE checkpoint every `interval_s` on a connection from `connect`."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], interval_s: float) -> None:
        self._connect = connect
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="sqlite-checkpoint", daemon=True)
        self.checkpoints = 0  # completed passes, for tests and curiosity

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def close(self) -> None:
        """Stop the thread (it finishes the checkpoint it is in)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _loop(self) -> None:
        db = self._connect()
        try:
            while not self._stop.wait(self._interval_s):
                self.run_once(db)
        finally:
            db.close()

    def run_once(self, db: sqlite3.Connection) -> tuple[int, int, int]:
        """One PASSIVE checkpoint: (busy, log frames, frames copied); never raises."""
        try:
            busy, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error:  # a checkpoint is housekeeping: the next pass tries again
            log.warning("WAL checkpoint failed", exc_info=True)
            return (1, 0, 0)
        self.checkpoints += 1
        return int(busy), int(frames), int(copied)
