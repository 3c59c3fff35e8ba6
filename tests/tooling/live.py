"""A live `switchboard serve` child process for tools that run outside Python (grpcurl, node).

Everything such a server needs from its environment is set here, in one place: when the
server gains required settings (e.g. API keys), add them to `SERVER_ENV` and the matching
client arguments to `CLIENT_HEADERS`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.process import ServerProcess

#: Environment of the server process (on top of the test's own environment).
SERVER_ENV: dict[str, str] = {
    "SWITCHBOARD_DISPATCH__POLL_INTERVAL_S": "0.05",
    "SWITCHBOARD_LOG_LEVEL": "WARNING",
}
#: Metadata every external client sends, as `name: value` strings (grpcurl `-H`).
CLIENT_HEADERS: list[str] = []


@contextmanager
def live_server(db_path: Path) -> Iterator[int]:
    """Serves on 127.0.0.1:0 with a private database; yields the port; stops by SIGTERM."""
    server = ServerProcess(db_path, SERVER_ENV)
    try:
        yield server.port
    finally:
        code, err = server.terminate()
        assert code == 0, err
