"""A lock file that hands SQLite's write lock from one worker process to the next at once.

When a worker finds the database locked, SQLite's own busy handler sleeps and polls, in steps
that grow to 100 ms. Under steady writes from 2 workers, the one that just committed takes
the lock again before the sleeping one wakes, so the other worker's writes waited hundreds of
milliseconds and the soak's write p99 reached seconds. An `flock` on a file beside the
database is granted by the kernel the moment its holder lets go: the waiting worker runs
next, whatever the sleeps. SQLite's lock is still taken (`BEGIN IMMEDIATE`) inside it, so a
process that does not use the lock file (a CLI tool) stays correct, only not as prompt.

The file's first byte, mapped into every worker, says "a worker with interactive writes is
waiting for the lock": a holder running bulk jobs (import chunks) reads it between jobs and
commits early, and a worker about to start bulk work lets the waiter go first. It is a hint
(with 3+ workers one waiter may clear it while another still waits): correctness never
depends on it, only how long a call's write waits behind another worker's bulk work.
"""

from __future__ import annotations

import fcntl
import mmap
import os


class WriterLock:
    """An exclusive `flock` on `path`, held by one write transaction at a time."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        if os.fstat(self._fd).st_size < mmap.PAGESIZE:
            os.ftruncate(self._fd, mmap.PAGESIZE)  # only grows: a zero page, the flag clear
        self._flag = mmap.mmap(self._fd, mmap.PAGESIZE)
        self.held = False

    def announce_waiting(self, waiting: bool) -> None:
        """Tell the holder (another process) that interactive writes wait here, or no longer."""
        self._flag[0] = 1 if waiting else 0

    def others_waiting(self) -> bool:
        """Whether a worker announced interactive writes waiting for the lock."""
        return self._flag[0] == 1

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
        self._flag.close()
        os.close(self._fd)
