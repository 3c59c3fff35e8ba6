"""Coalescing claimed steps into batch calls, per connector and action.

A claimed step for a `BatchConnector` action whose `max_batch` is above 1 is not delivered
on its own: it joins the open batch of its connector and action. The batch is sent when it
is full (the connector's item count, or its byte limit), or `linger_s` after its first step
joined, whichever comes first; with no linger, whatever one claim found is sent at once.

Steps of different actions never share a batch. A contact's steps for one ordered
connector never share one either: the claim offers a contact's next step only once the
earlier one has left the outbox (see `store/sqlite/outbox.py`), so the two cannot be
pending together. For an unordered connector, a batch keeps its steps in claim order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from switchboard.server.connectors.base import JsonDict
from switchboard.server.dispatch.attempts import BatchCall
from switchboard.server.store.base import OutboxItem


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """One claimed step waiting in (or sent with) a batch."""

    item: OutboxItem
    call: BatchCall
    size: int  # payload bytes, counted only when the connector has a byte limit


def batch_entry(item: OutboxItem, payload: JsonDict, count_bytes: bool) -> BatchEntry:
    """The entry for `item` with the `payload` its connector will receive."""
    call = BatchCall(
        payload=payload,
        idempotency_key=item.idempotency_key,
        run_id=item.run_id,
        step_index=item.step_index,
        attempt=item.attempts + 1,
        traceparent=item.traceparent,
    )
    size = len(json.dumps(payload, separators=(",", ":"), default=str)) if count_bytes else 0
    return BatchEntry(item, call, size)


#: Called with (connector, action, entries) when a batch is to go out.
SendBatch = Callable[[str, str, list[BatchEntry]], None]


@dataclass
class _Open:
    """A batch still taking steps."""

    entries: list[BatchEntry] = field(default_factory=list)
    size: int = 0
    timer: asyncio.TimerHandle | None = None


class Coalescer:
    """Open batches by (connector, action); hands each full or lingered batch to `send`."""

    def __init__(self, linger_s: float, send: SendBatch) -> None:
        self._linger_s = linger_s
        self._send = send
        self._open: dict[tuple[str, str], _Open] = {}
        self._pending: dict[str, int] = {}

    def pending(self, connector: str) -> int:
        """Steps of `connector` claimed but not yet sent."""
        return self._pending.get(connector, 0)

    def add(
        self,
        connector: str,
        action: str,
        entry: BatchEntry,
        max_items: int,
        max_bytes: int | None = None,
    ) -> None:
        """Add a claimed step; send its batch once full (`max_items`, `max_bytes`)."""
        key = (connector, action)
        batch = self._open.get(key)
        if batch is not None and max_bytes and batch.size + entry.size > max_bytes:
            self.flush(key)  # this step would overflow the bytes: it opens the next batch
            batch = None
        if batch is None:
            batch = self._open[key] = _Open()
            if self._linger_s > 0:
                loop = asyncio.get_running_loop()
                batch.timer = loop.call_later(self._linger_s, self.flush, key)
        batch.entries.append(entry)
        batch.size += entry.size
        self._pending[connector] = self._pending.get(connector, 0) + 1
        if len(batch.entries) >= max_items or (max_bytes and batch.size >= max_bytes):
            self.flush(key)

    def settle(self) -> None:
        """A claim's steps were all added: with no linger, send every open batch now."""
        if self._linger_s <= 0:
            self.flush_all()

    def flush(self, key: tuple[str, str]) -> None:
        """Send the open batch for (connector, action), if any."""
        batch = self._open.pop(key, None)
        if batch is None:
            return
        if batch.timer is not None:
            batch.timer.cancel()
        connector, action = key
        self._pending[connector] -= len(batch.entries)
        self._send(connector, action, batch.entries)

    def flush_all(self) -> None:
        """Send every open batch (at stop: they go out within the grace period)."""
        for key in list(self._open):
            self.flush(key)
