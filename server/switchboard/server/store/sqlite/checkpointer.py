"""WAL checkpoints off the write path: a PASSIVE checkpoint from a thread of its own.

By default SQLite checkpoints inside the COMMIT that takes the log past
`wal_autocheckpoint` pages (1000, ~4 MB): that commit copies the log into the database file
and fsyncs it before it returns, and every write acknowledged by that commit (a whole group
of callers) waits for it, while the worker's next batch waits behind it. Under the soak's
steady writes the log passed 4 MB about three times a second.

This thread runs `PRAGMA wal_checkpoint(PASSIVE)` every interval instead: PASSIVE never
waits for writers or readers (it copies what it can), so the copying leaves the callers'
path. The write connection keeps an automatic checkpoint, at a higher mark
(`AUTOCHECKPOINT_PAGES`), only as a safety net: SQLite rewinds the log to its start only
after a checkpoint that copied every frame, which a background pass, racing steady commits
and readers, does not always manage; with no automatic checkpoint at all the log grew
without bound (380 MB in 45 s). When that net fires, most frames are already copied.
Each worker process runs one thread; SQLite lets one checkpoint run at a time.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

AUTOCHECKPOINT_PAGES = 4000  # ~16 MB of log: the safety net, see above
#: After a rewind the log file is cut back to this size (bytes), not left at its peak.
JOURNAL_SIZE_LIMIT = 32 * 2**20


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
