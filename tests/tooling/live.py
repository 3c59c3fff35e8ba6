"""A live `switchboard serve` child process for tools that run outside Python (grpcurl, node).

Everything such a server needs from its environment is set here, in one place: when the
server gains required settings (e.g. API keys), add them to `SERVER_ENV` and the matching
client arguments to `CLIENT_HEADERS`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from switchboard.server.auth.local_key import local_key_path
from tests.process import ServerProcess

#: Environment of the server process (on top of the test's own environment).
SERVER_ENV: dict[str, str] = {
    "SWITCHBOARD_DISPATCH__POLL_INTERVAL_S": "0.05",
    "SWITCHBOARD_LOG_LEVEL": "WARNING",
    # As users run it: `make run` is `serve --local`, with authentication on.
    "SWITCHBOARD_AUTH__ENABLED": "true",
    # `--local` serves the Connect protocol; on a free port here (docs/connect.md examples).
    "SWITCHBOARD_CONNECT__LISTEN": "127.0.0.1:0",
}
#: Metadata every external client sends, as `name: value` strings (grpcurl `-H`); set to
#: the live server's local development key while it runs.
CLIENT_HEADERS: list[str] = []
#: The live server's local development key (`$KEY` in the docs' grpcurl examples).
LOCAL_KEY: list[str] = []
#: The live server's Connect protocol port.
CONNECT_PORT: list[int] = []


@contextmanager
def live_server(db_path: Path) -> Iterator[int]:
    """Serves on 127.0.0.1:0 with a private database; yields the port; stops by SIGTERM."""
    server = ServerProcess(db_path, SERVER_ENV, extra_args=("--local",))
    key = local_key_path(str(db_path)).read_text().strip()
    found = server.wait_for_line(r"Connect protocol .* on http://127\.0\.0\.1:(\d+)/")
    CONNECT_PORT[:] = [int(found.group(1))]
    CLIENT_HEADERS[:] = [f"authorization: Bearer {key}"]
    LOCAL_KEY[:] = [key]
    try:
        yield server.port
    finally:
        code, err = server.terminate()
        assert code == 0, err
