"""A vendor contract server: aiohttp on 127.0.0.1:0, checking requests as the vendor documents.

Each vendor module registers handlers that check one documented request (method, path,
query, headers, body shape) and record every deviation in `violations`; tests assert there
are none. `script` queues documented error answers (429 with Retry-After, 400, 5xx) that a
route gives before its normal answer.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    """A scripted answer."""

    status: int
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> web.Response:
        text = self.body if isinstance(self.body, str) else json.dumps(self.body)
        return web.Response(
            status=self.status, text=text, headers=self.headers, content_type="application/json"
        )


Handler = Callable[[Seen], Awaitable[web.StreamResponse]]


class ContractServer:
    """Routes by (method, path prefix); unknown routes are violations."""

    def __init__(self) -> None:
        self.received: list[Seen] = []
        self.violations: list[str] = []
        self.script: dict[str, deque[Reply]] = defaultdict(deque)
        self._routes: list[tuple[str, str, Handler]] = []
        self._runner: web.AppRunner | None = None
        self.port = 0

    def route(self, method: str, prefix: str, handler: Handler) -> None:
        self._routes.append((method, prefix, handler))

    def violation(self, seen: Seen, text: str) -> None:
        self.violations.append(f"{seen.method} {seen.path}: {text}")

    def calls(self, path_prefix: str) -> list[Seen]:
        return [s for s in self.received if s.path.startswith(path_prefix)]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        seen = Seen(
            request.method,
            request.path,
            dict(request.query),
            {k.lower(): v for k, v in request.headers.items()},
            await request.read(),
        )
        self.received.append(seen)
        for method, prefix, handler in self._routes:
            if request.method == method and request.path.startswith(prefix):
                queued = self.script[prefix]
                if queued:
                    return queued.popleft().response()
                return await handler(seen)
        self.violation(seen, "no such route")
        return Reply(404, {"error": "not found"}).response()
