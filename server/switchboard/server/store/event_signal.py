"""In-process wake-ups for event streams: an append announces itself to every listener.

The announcement comes from inside the writing transaction, before its COMMIT, and from
whatever thread runs it; a listener that wakes therefore re-reads a few times shortly
after (see `domain/events.py`). Writes of other processes or replicas are not announced
here: listeners also poll.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class EventSignal:
    """Sets every subscribed asyncio.Event, thread-safely, when an event is appended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: dict[asyncio.Event, asyncio.AbstractEventLoop] = {}

    def announce(self) -> None:
        """Wake every listener (cheap when there is none)."""
        if not self._listeners:
            return
        with self._lock:
            listeners = list(self._listeners.items())
        for event, loop in listeners:
            if event.is_set():
                continue
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the listener's loop closed under it
                continue

    @contextmanager
    def listen(self) -> Iterator[asyncio.Event]:
        """An asyncio.Event (of the running loop) set after appends while the block runs."""
        event = asyncio.Event()
        with self._lock:
            self._listeners[event] = asyncio.get_running_loop()
        try:
            yield event
        finally:
            with self._lock:
                self._listeners.pop(event, None)


# One per process: every store in it announces here.
SIGNAL = EventSignal()
