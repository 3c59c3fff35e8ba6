"""SQL of `RebuildReadModels` (mixed into both stores' transaction): the swap.

The swap empties and refills the models inside the caller's one write transaction, so a
reader sees either the old models or the new ones (SQLite readers keep their snapshot,
PostgreSQL's see committed rows only). The SQL is the subset both dialects share, written
with `?` placeholders; the concrete class supplies `_rows` and `_many`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from switchboard.server.store.facts import FACT_COLUMNS
from switchboard.server.store.replay import ActivityRecord, ReadModels, facts_row
from switchboard.v1 import contacts_pb2, leads_pb2

_CHUNK = 500  # ids per IN (...) list
_FACTS_SQL = (
    f"INSERT INTO segment_facts ({', '.join(FACT_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in FACT_COLUMNS)})"
)


def _us(ts: Any) -> int:
    return int(ts.seconds) * 1_000_000 + int(ts.nanos) // 1000


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


class RebuildQueries:
    """Implements the rebuild's reads and its swap over `self._db`."""

    __slots__ = ()

    def _rows(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        """Run `sql` and return its rows (none for writes)."""
        raise NotImplementedError

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one write statement for each of `rows` (the driver's executemany)."""
        raise NotImplementedError

    def current_read_models(
        self, contact_ids: Sequence[str]
    ) -> tuple[list[contacts_pb2.Contact], list[ActivityRecord]]:
        """The current contacts and activities of `contact_ids` (kept by a rebuild)."""
        contacts: list[contacts_pb2.Contact] = []
        activities: list[ActivityRecord] = []
        for chunk in _chunks(contact_ids):
            marks = ",".join("?" * len(chunk))
            cur = self._rows(f"SELECT data FROM contacts WHERE id IN ({marks})", list(chunk))
            contacts.extend(contacts_pb2.Contact.FromString(r[0]) for r in cur)
            cur = self._rows(
                "SELECT id, contact_id, type, occurred_us, value, attributes FROM activities "
                f"WHERE contact_id IN ({marks}) ORDER BY contact_id, occurred_us, id",
                list(chunk),
            )
            activities.extend(
                ActivityRecord(str(r[0]), str(r[1]), str(r[2]), int(r[3]), float(r[4]), bytes(r[5]))
                for r in cur
            )
        return contacts, activities

    def current_leads(self, contact_ids: Sequence[str]) -> list[leads_pb2.Lead]:
        """The current lead rows of `contact_ids` (kept by a rebuild)."""
        leads: list[leads_pb2.Lead] = []
        for chunk in _chunks(contact_ids):
            marks = ",".join("?" * len(chunk))
            cur = self._rows(f"SELECT data FROM leads WHERE contact_id IN ({marks})", list(chunk))
            leads.extend(leads_pb2.Lead.FromString(r[0]) for r in cur)
        return leads

    def replace_read_models(self, models: ReadModels, today: int) -> None:
        """Replace contacts, lists, activities, leads and the segments model with `models`."""
        tables = ("contacts", "contact_lists", "activities", "leads", "segment_facts")
        for table in (*tables, "activity_days"):
            self._rows(f"DELETE FROM {table}")
        contacts = sorted(models.contacts.values(), key=lambda c: c.id)
        self._many(
            "INSERT INTO contacts (id, email, updated_us, data) VALUES (?, ?, ?, ?)",
            [(c.id, c.email, _us(c.updated_at), c.SerializeToString()) for c in contacts],
        )
        self._many(
            "INSERT INTO contact_lists (list, contact_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(name, c.id) for c in contacts for name in c.lists],
        )
        live_leads = models.live_leads()
        self._many(
            "INSERT INTO leads (contact_id, data) VALUES (?, ?)",
            [(lead.contact_id, lead.SerializeToString()) for lead in live_leads],
        )
        leads = {lead.contact_id: lead for lead in live_leads}
        acts = models.live_activities()
        self._many(
            "INSERT INTO activities (id, contact_id, type, occurred_us, value, attributes) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [(a.id, a.contact_id, a.type, a.occurred_us, a.value, a.attributes) for a in acts],
        )
        facts: list[tuple[Any, ...]] = []
        days: list[tuple[str, int, int, float]] = []
        for c in contacts:
            cols, buckets = facts_row(c, leads.get(c.id), models.activities.get(c.id, ()), today)
            facts.append(tuple(cols[name] for name in FACT_COLUMNS))
            days.extend((c.id, d, n, a) for d, (n, a) in buckets.items())
        self._many(_FACTS_SQL, facts)
        self._many(
            "INSERT INTO activity_days (contact_id, day, purchases, amount) VALUES (?, ?, ?, ?)",
            days,
        )
