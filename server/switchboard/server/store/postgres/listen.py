"""Wake-ups across replicas: LISTEN on the outbox channel, call back on every NOTIFY.

This is the one place the store uses psycopg's async API directly: a notification is an
event to await, not a query to run, so one `AsyncConnection` in autocommit mode waits on
the event loop without a thread. Lost connections are re-made with backoff; after each
(re)connect the callbacks run once, as a notification may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import psycopg
from psycopg import sql

log = logging.getLogger(__name__)


class Listener:
    """Runs `callbacks` whenever `channel` is notified, until `aclose`."""

    def __init__(self, conninfo: str, channel: str) -> None:
        self._conninfo = conninfo
        self._channel = channel
        self._callbacks: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call `callback` (on the event loop) on each notification; starts listening."""
        self._callbacks.append(callback)
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="pg-listen")

    async def aclose(self) -> None:
        """Stop listening and close the connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def _fire(self) -> None:
        for callback in self._callbacks:
            try:
                callback()
            except Exception:
                log.exception("outbox wake-up callback failed")

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                async with conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    delay = 0.1
                    self._fire()
                    async for _ in conn.notifies():
                        self._fire()
            except psycopg.Error as exc:
                log.warning("outbox LISTEN connection lost (%s); polling until it is back", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
