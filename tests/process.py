"""Run `switchboard serve` as a child process on 127.0.0.1:0, for crash and signal tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

_READY = re.compile(r"serving gRPC on 127\.0\.0\.1:(\d+)")


class ServerProcess:
    """A server child process; `port` is known once it is ready."""

    def __init__(
        self,
        db_path: Path,
        extra_env: dict[str, str] | None = None,
        extra_args: tuple[str, ...] = (),
        *,
        workers: int = 1,
        ready: str = _READY.pattern,
    ) -> None:
        # Auth is on by default; these tests are about the process, not credentials.
        env = {
            **os.environ,
            "SWITCHBOARD_DATABASE__PATH": str(db_path),
            "SWITCHBOARD_AUTH__ENABLED": "false",
            # Nor about the per-caller rate limit: some tests send bursts on purpose.
            "SWITCHBOARD_LIMITS__RATE_PER_S": "0",
            # Nor about the drain before a stop (tests that need it set their own).
            "SWITCHBOARD_DRAIN_PERIOD_S": "0",
            # Nor about access lines: stderr is read only until the server is ready, and a
            # line per call would fill the pipe and block the server.
            "SWITCHBOARD_ACCESS_LOG": "false",
            **(extra_env or {}),
        }
        if "--local" in extra_args:
            # `--local` also serves Connect on a fixed port (localhost:50052); test servers
            # take a free one so that suites running side by side do not collide there.
            env.setdefault("SWITCHBOARD_CONNECT__LISTEN", "127.0.0.1:0")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "switchboard.server.cli",
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--workers",
                str(workers),
                *extra_args,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its own process group: kill() reaches any workers too
        )
        self.stderr_lines: list[str] = []
        self.port = self._wait_ready(re.compile(ready), timeout_s=30.0)

    def _wait_ready(self, ready: re.Pattern[str], timeout_s: float) -> int:
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout_s
        seen = self.stderr_lines
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            match = ready.search(line)
            if match:
                return int(match.group(1))
        self.kill()
        raise RuntimeError("server did not start:\n" + "".join(seen))

    def wait_for_line(self, pattern: str, timeout_s: float = 10.0) -> re.Match[str]:
        """Read stderr until a line matches `pattern` (lines after the ready line)."""
        assert self.proc.stderr is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.stderr_lines.append(line)
            if found := re.search(pattern, line):
                return found
        raise RuntimeError(f"no line matching {pattern!r}:\n" + "".join(self.stderr_lines))

    def kill(self) -> None:
        """SIGKILL: no chance to flush or clean up, like a crash."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._close()

    def terminate(self, timeout_s: float = 20.0) -> tuple[int, str]:
        """SIGTERM and wait; return the exit code and what it wrote to stderr after."""
        self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout_s)

    def wait(self, timeout_s: float = 20.0) -> tuple[int, str]:
        """Wait for the process to end; return the exit code and what it wrote to stderr."""
        _, err = self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode, err

    def _close(self) -> None:
        if self.proc.stderr is not None:
            self.proc.stderr.close()
