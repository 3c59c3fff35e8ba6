"""A base for vendor contract servers: an aiohttp app on 127.0.0.1:0 that logs every request.

A subclass adds the vendor's routes and state. `fail_next` holds scripted answers that the
next API requests get instead of the normal handling (to replay documented errors).
"""

from __future__ import annotations

import json
import socket
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Canned:
    """A scripted answer for the next API request."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def reply(status: int, body: Any = None, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer (or an empty one for a None body)."""
    if body is None:
        return web.Response(status=status, headers=headers)
    return web.json_response(body, status=status, headers=headers)


class ContractServer:
    """Start with `await start()`, stop with `await stop()`; `url` is its base URL."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.fail_next: deque[Canned] = deque()
        self.app = web.Application(middlewares=[self._record])
        self._runner: web.AppRunner | None = None
        self.url = ""

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                {k.lower(): v for k, v in request.headers.items()},
                body,
            )
        )
        if self.fail_next and self.scriptable(request):
            canned = self.fail_next.popleft()
            return reply(canned.status, canned.body, canned.headers)
        response: web.StreamResponse = await handler(request)
        return response

    def scriptable(self, request: web.Request) -> bool:
        """Whether a scripted failure may answer this request (default: all)."""
        return True

    def calls(self, method: str, path: str) -> list[Seen]:
        """The requests seen for one method and path."""
        return [s for s in self.seen if s.method == method and s.path == path]

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app)
        await self._runner.setup()
        # Bind port 0 ourselves so the port is known without reaching into the site.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
