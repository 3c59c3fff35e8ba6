"""The tool the webhook connector calls: an HTTP server that records every delivery."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Delivery:
    """One POST as the tool saw it."""

    key: str  # the `idempotency-key` header: `<run id>:<step index>`
    token: str  # the trigger's own `token` attribute, set by the load driver
    at: float  # time.monotonic() on arrival


def _token(body: bytes) -> str:
    """The `token` attribute the driver put on the trigger, wherever the payload holds it."""
    try:
        found = _find(json.loads(body), "token")
    except ValueError:
        return ""
    return found if isinstance(found, str) else ""


def _find(value: object, name: str) -> object:
    if isinstance(value, dict):
        if name in value:
            return value[name]
        for inner in value.values():
            found = _find(inner, name)
            if found is not None:
                return found
    return None


class RecordingPeer:
    """An HTTP server on 127.0.0.1:0 answering 200 to every POST and noting it."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        deliveries = self.deliveries
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                seen = Delivery(
                    self.headers.get("idempotency-key", ""), _token(body), time.monotonic()
                )
                with lock:
                    deliveries.append(seen)
                answer = b'{"ok":true}'
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: one line per delivery would drown the report."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def snapshot(self) -> list[Delivery]:
        """A copy of the deliveries so far."""
        return list(self.deliveries)

    def close(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
