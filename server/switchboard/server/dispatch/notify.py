"""In-process notifications of run changes, so watchers wake at once instead of polling."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class RunNotifier:
    """Wakes everyone watching a run when it changes. Watchers still poll slowly, because
    a change made by another process is not announced here."""

    def __init__(self) -> None:
        self._watchers: dict[str, set[asyncio.Event]] = {}
        #: Also told of every change: a dispatch-role process forwards it to api processes.
        self.forward: Callable[[str], None] | None = None

    def publish(self, run_id: str) -> None:
        """Announce that `run_id` changed."""
        if self.forward is not None:
            self.forward(run_id)
        for event in self._watchers.get(run_id, ()):
            event.set()

    @contextmanager
    def subscribe(self, run_id: str) -> Iterator[asyncio.Event]:
        """An event set on every change of `run_id` while the block runs."""
        event = asyncio.Event()
        self._watchers.setdefault(run_id, set()).add(event)
        try:
            yield event
        finally:
            watchers = self._watchers.get(run_id)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    del self._watchers[run_id]
