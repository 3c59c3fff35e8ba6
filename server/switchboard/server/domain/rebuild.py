"""RebuildReadModels: replay the event log into fresh read models, then swap them in.

The log is read in chunks on reader threads (decoded in bulk: one key lookup per chunk,
one unwrap per contact, cached), folded into in-memory models (`store/replay.py`), and a
progress message is produced per chunk. The swap is one write transaction that first reads
the events appended since the last chunk (so none is missed), keeps the current rows of
contacts with schema-1 history, and replaces the models. Cancelling before the swap
leaves the old models as they were: nothing is written until then.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from switchboard.server.common.timeutil import now_us
from switchboard.server.rules.segment_facts import day_of
from switchboard.server.store.base import ReadTx, Store, WriteTx
from switchboard.server.store.event_log import EventFilter, EventReads
from switchboard.server.store.replay import ReadModels
from switchboard.server.store.replay_decode import replay_rows
from switchboard.v1 import admin_pb2

CHUNK = 5_000  # events per read transaction and per progress message
_ALL = EventFilter()


def replay_chunk(tx: EventReads, models: ReadModels, limit: int = CHUNK) -> int:
    """Fold up to `limit` events after `models.cursor` into `models`; how many were read."""
    rows = tx.event_rows(models.cursor, limit, _ALL)
    if not rows:
        return 0
    replay_rows(tx, rows, models)
    return len(rows)


def swap(tx: WriteTx, models: ReadModels, dry_run: bool) -> None:
    """Catch up with the log, then replace the read models (unless `dry_run`)."""
    while replay_chunk(tx, models):
        pass
    legacy = sorted(models.legacy - models.erased)
    contacts, activities = tx.current_read_models(legacy)
    models.keep_current(contacts, activities)
    models.keep_current_leads(tx.current_leads(models.unlogged_leads()))
    if not dry_run:
        tx.replace_read_models(models, day_of(now_us()))


class RebuildService:
    """Rebuilds the read models derived from the event log."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def rebuild(self, dry_run: bool) -> AsyncIterator[admin_pb2.RebuildReadModelsResponse]:
        """Progress per chunk read; the last message (`done`) once the swap committed."""
        models = ReadModels()
        started = time.monotonic()

        def progress() -> admin_pb2.RebuildReadModelsResponse:
            elapsed = max(time.monotonic() - started, 1e-6)
            return admin_pb2.RebuildReadModelsResponse(
                events_read=models.events_read,
                cursor=models.cursor,
                events_per_second=models.events_read / elapsed,
            )

        def read(tx: ReadTx) -> int:
            return replay_chunk(tx, models)

        while await self._store.read(read):
            yield progress()
        await self._store.write(lambda tx: swap(tx, models, dry_run), bulk=True)
        last = progress()
        last.done = True
        last.contacts = len(models.contacts)
        live = models.live_activities()
        last.activities = len(live)
        last.list_memberships = sum(len(set(c.lists)) for c in models.contacts.values())
        last.legacy_contacts_kept = len(models.legacy - models.erased)
        last.redacted_events = models.redacted
        last.leads = len(models.live_leads())
        last.leads_kept = models.leads_kept
        yield last
