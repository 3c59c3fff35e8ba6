"""A lock file that hands SQLite's write lock from one worker process to the next at once.

When a worker finds the database locked, SQLite's own busy handler sleeps and polls, in steps
that grow to 100 ms. Under steady writes from 2 workers, the one that just committed takes
the lock again before the sleeping one wakes, so the other worker's writes waited hundreds of
milliseconds and the soak's write p99 reached seconds. An `flock` on a file beside the
database is granted by the kernel the moment its holder lets go: the waiting worker runs
next, whatever the sleeps. SQLite's lock is still taken (`BEGIN IMMEDIATE`) inside it, so a
process that does not use the lock file (a CLI tool) stays correct, only not as prompt.
"""

from __future__ import annotations

import fcntl
import os


class WriterLock:
    """An exclusive `flock` on `path`, held by one write transaction at a time."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self.held = False

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never waits."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        self.held = True
        return True

    def acquire(self) -> None:
        """Wait for the lock (call from a thread: it blocks)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.held = True

    def release(self) -> None:
        """Let the next writer in (no-op when not held)."""
        if self.held:
            self.held = False
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Release and close the file."""
        self.release()
        os.close(self._fd)
