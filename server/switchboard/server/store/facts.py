"""The segments read model, kept by the same transaction as the write it follows.

`segment_facts` holds one row of typed columns per live contact; `activity_days` holds its
purchases per UTC day. Both stores mix `FactsQueries` into their transaction class and give
it `_rows` (their driver and placeholder); the SQL here is the subset both dialects share.
"""

from __future__ import annotations

import functools
from typing import Any

from switchboard.server.rules.segment_facts import (
    contact_columns,
    day_of,
    lead_columns,
    window_columns,
)
from switchboard.server.store.base import ActivityRow
from switchboard.v1 import contacts_pb2, leads_pb2, segments_pb2

PURCHASE = "purchase"
ADD_TO_CART = "add_to_cart"
# A row inserted by the migration for a contact written before the read model existed:
# the first query rebuilds it from the contact, its lead and its activities.
UNBUILT = -1

#: The columns a segment expression can reach, in `facts_row` order.
FACT_COLUMNS = [
    "contact_id",
    "country",
    "attributes",
    "attribute_count",
    "list_count",
    "consent_advertising",
    "consent_analytics",
    "consent_email_marketing",
    "consent_personalization",
    "consent_sms_marketing",
    "lead_score",
    "lead_grade",
    "lead_status",
    "purchases_30d",
    "purchases_90d",
    "purchases_365d",
    "amount_30d",
    "amount_90d",
    "amount_365d",
    "purchases_total",
    "amount_total",
    "average_basket",
    "last_activity_us",
    "last_purchase_us",
    "last_cart_us",
    "cart_without_order",
    "created_us",
    "expires_day",
]


#: What the column snapshot holds: the columns an expression can reach, but the free-form
#: attributes (read apart, per key, by `facts_attributes_*`); bookkeeping columns (last
#: purchase, expiry, ...) stay out.
SNAPSHOT_COLUMNS = [
    c
    for c in FACT_COLUMNS
    if c not in ("attributes", "amount_total", "last_purchase_us", "last_cart_us", "expires_day")
]


def _upsert(columns: dict[str, Any]) -> tuple[str, tuple[Any, ...]]:
    return _upsert_sql(tuple(columns)), tuple(columns.values())


@functools.lru_cache(maxsize=32)
def _upsert_sql(names: tuple[str, ...]) -> str:
    sets = ", ".join(f"{n} = excluded.{n}" for n in names if n != "contact_id")
    return (
        f"INSERT INTO segment_facts ({', '.join(names)}) "
        f"VALUES ({', '.join('?' for _ in names)}) ON CONFLICT (contact_id) DO UPDATE SET {sets}"
    )


class FactsQueries:
    """Read-model upkeep and segment queries; the concrete class supplies `_rows`."""

    __slots__ = ()

    def _rows(self, sql: str, args: tuple[Any, ...] | list[Any] = ()) -> list[tuple[Any, ...]]:
        """Run `sql` (written with `?` placeholders) and return its rows (none for writes)."""
        raise NotImplementedError

    # -- upkeep, called by the store's own writes ------------------------------------------
    def _facts_contact(self, contact: contacts_pb2.Contact) -> None:
        self._rows(*_upsert({"contact_id": contact.id, **contact_columns(contact)}))

    def _facts_lead(self, lead: leads_pb2.Lead) -> None:
        cols = lead_columns(lead)
        self._rows(
            "UPDATE segment_facts SET lead_score = ?, lead_grade = ?, lead_status = ? "
            "WHERE contact_id = ?",
            (cols["lead_score"], cols["lead_grade"], cols["lead_status"], lead.contact_id),
        )

    def _facts_activity(self, contact_id: str, row: ActivityRow, today: int) -> None:
        found = self._rows(
            "SELECT last_activity_us, last_purchase_us, last_cart_us, purchases_total, "
            "amount_total FROM segment_facts WHERE contact_id = ?",
            (contact_id,),
        )
        if not found:
            return
        last, last_purchase, last_cart, count, amount = found[0]
        last = max(last, row.occurred_us)
        if row.type == PURCHASE:
            last_purchase = max(last_purchase, row.occurred_us)
            count, amount = count + 1, amount + row.value
            self._rows(
                "INSERT INTO activity_days (contact_id, day, purchases, amount) "
                "VALUES (?, ?, 1, ?) ON CONFLICT (contact_id, day) DO UPDATE SET "
                "purchases = activity_days.purchases + 1, "
                "amount = activity_days.amount + excluded.amount",
                (contact_id, day_of(row.occurred_us), row.value),
            )
        elif row.type == ADD_TO_CART:
            last_cart = max(last_cart, row.occurred_us)
        cols = {
            "contact_id": contact_id,
            "last_activity_us": last,
            "last_purchase_us": last_purchase,
            "last_cart_us": last_cart,
            "cart_without_order": int(last_cart > last_purchase),
            "purchases_total": count,
            "amount_total": amount,
            "average_basket": amount / count if count else 0.0,
        }
        if row.type == PURCHASE:
            cols.update(self._windows(contact_id, today))
        self._rows(*_upsert(cols))

    def _windows(self, contact_id: str, today: int) -> dict[str, Any]:
        days = self._rows(
            "SELECT day, purchases, amount FROM activity_days WHERE contact_id = ? AND day > ?",
            (contact_id, today - 365),
        )
        return window_columns(((int(d), int(p), float(a)) for d, p, a in days), today)

    def _facts_erase(self, contact_id: str) -> None:
        self._rows("DELETE FROM segment_facts WHERE contact_id = ?", (contact_id,))
        self._rows("DELETE FROM activity_days WHERE contact_id = ?", (contact_id,))

    # -- time passing ----------------------------------------------------------------------
    def facts_due(self, today: int) -> bool:
        """Whether some row's windows changed since it was written (or it was never built)."""
        return bool(
            self._rows("SELECT 1 FROM segment_facts WHERE expires_day <= ? LIMIT 1", (today,))
        )

    def roll_facts(self, today: int, limit: int) -> int:
        """Re-sum the windows of up to `limit` rows whose day has come; how many were."""
        due = self._rows(
            "SELECT contact_id, expires_day FROM segment_facts WHERE expires_day <= ? "
            "ORDER BY expires_day LIMIT ?",
            (today, limit),
        )
        for contact_id, expires in due:
            if expires == UNBUILT:
                self._rebuild(contact_id, today)
            else:
                self._rows(*_upsert({"contact_id": contact_id, **self._windows(contact_id, today)}))
        self._rows("DELETE FROM activity_days WHERE day <= ?", (today - 365,))
        return len(due)

    def _rebuild(self, contact_id: str, today: int) -> None:
        contact = self._rows("SELECT data FROM contacts WHERE id = ?", (contact_id,))
        if not contact:
            self._facts_erase(contact_id)
            return
        self._rows("UPDATE segment_facts SET expires_day = 0 WHERE contact_id = ?", (contact_id,))
        self._facts_contact(contacts_pb2.Contact.FromString(contact[0][0]))
        lead = self._rows("SELECT data FROM leads WHERE contact_id = ?", (contact_id,))
        if lead:
            self._facts_lead(leads_pb2.Lead.FromString(lead[0][0]))
        for kind, at, value in self._rows(
            "SELECT type, occurred_us, value FROM activities WHERE contact_id = ? "
            "ORDER BY occurred_us",
            (contact_id,),
        ):
            self._facts_activity(contact_id, ActivityRow(kind, at, value), today)
        self._rows(*_upsert({"contact_id": contact_id, **self._windows(contact_id, today)}))

    # -- segment queries -------------------------------------------------------------------
    def segment_count(self, where: str, params: list[Any]) -> int:
        """How many read-model rows match `where` (over `segment_facts f`)."""
        return int(self._rows(f"SELECT count(*) FROM segment_facts f WHERE {where}", params)[0][0])

    def segment_members(
        self, where: str, params: list[Any], after_id: str, limit: int
    ) -> list[contacts_pb2.Contact]:
        """The matching contacts after `after_id`, by id."""
        rows = self._rows(
            "SELECT c.data FROM segment_facts f JOIN contacts c ON c.id = f.contact_id "
            f"WHERE f.contact_id > ? AND ({where}) ORDER BY f.contact_id LIMIT ?",
            [after_id, *params, limit],
        )
        return [contacts_pb2.Contact.FromString(r[0]) for r in rows]

    def segment_member_ids(
        self, where: str, params: list[Any], after_id: str, limit: int
    ) -> list[str]:
        """The matching contact ids after `after_id`, by id."""
        rows = self._rows(
            f"SELECT f.contact_id FROM segment_facts f WHERE f.contact_id > ? AND ({where}) "
            "ORDER BY f.contact_id LIMIT ?",
            [after_id, *params, limit],
        )
        return [str(r[0]) for r in rows]

    # -- the column snapshot (domain/segment_snapshot.py) ----------------------------------
    def facts_log_bounds(self) -> tuple[int, int]:
        """The oldest and newest change-log sequence numbers (0, 0 when empty)."""
        # Two subqueries: each is then one probe at an end of the key, where a single
        # `SELECT min(seq), max(seq)` scans the whole log.
        row = self._rows(
            "SELECT (SELECT min(seq) FROM segment_facts_log), "
            "(SELECT max(seq) FROM segment_facts_log)"
        )[0]
        return int(row[0] or 0), int(row[1] or 0)

    def facts_log_after(self, after: int, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` (seq, contact id) changes after `after`, oldest first."""
        rows = self._rows(
            "SELECT seq, contact_id FROM segment_facts_log WHERE seq > ? ORDER BY seq LIMIT ?",
            (after, limit),
        )
        return [(int(seq), str(cid)) for seq, cid in rows]

    def facts_chunk(self, after_id: str, limit: int) -> list[tuple[Any, ...]]:
        """Up to `limit` rows of SNAPSHOT_COLUMNS after `after_id`, by contact id."""
        return self._rows(
            f"SELECT {', '.join(SNAPSHOT_COLUMNS)} FROM segment_facts WHERE contact_id > ? "
            "ORDER BY contact_id LIMIT ?",
            (after_id, limit),
        )

    def facts_of(self, contact_ids: list[str]) -> list[tuple[Any, ...]]:
        """The SNAPSHOT_COLUMNS rows of these contacts (the erased have none)."""
        marks = ", ".join("?" for _ in contact_ids)
        return self._rows(
            f"SELECT {', '.join(SNAPSHOT_COLUMNS)} FROM segment_facts "
            f"WHERE contact_id IN ({marks})",
            contact_ids,
        )

    def facts_attributes_chunk(self, after_id: str, limit: int) -> list[tuple[str, Any]]:
        """Up to `limit` (contact id, attributes) after `after_id`, by contact id."""
        rows = self._rows(
            "SELECT contact_id, attributes FROM segment_facts WHERE contact_id > ? "
            "ORDER BY contact_id LIMIT ?",
            (after_id, limit),
        )
        return [(str(cid), attrs) for cid, attrs in rows]

    def facts_attributes_of(self, contact_ids: list[str]) -> list[tuple[str, Any]]:
        """(contact id, attributes) of these contacts (the erased have none)."""
        marks = ", ".join("?" for _ in contact_ids)
        rows = self._rows(
            f"SELECT contact_id, attributes FROM segment_facts WHERE contact_id IN ({marks})",
            contact_ids,
        )
        return [(str(cid), attrs) for cid, attrs in rows]

    def list_member_ids(self, name: str) -> list[str]:
        """The contact ids on the list `name`."""
        return [
            str(r[0])
            for r in self._rows("SELECT contact_id FROM contact_lists WHERE list = ?", (name,))
        ]

    def lists_of(self, contact_ids: list[str]) -> list[tuple[str, str]]:
        """(list, contact id) for every list these contacts are on."""
        marks = ", ".join("?" for _ in contact_ids)
        rows = self._rows(
            f"SELECT list, contact_id FROM contact_lists WHERE contact_id IN ({marks})",
            contact_ids,
        )
        return [(str(name), str(cid)) for name, cid in rows]

    def prune_facts_log(self, below: int) -> None:
        """Forget changes before `below` (a snapshot further behind reloads in full)."""
        self._rows("DELETE FROM segment_facts_log WHERE seq < ?", (below,))

    def facts_row(self, contact_id: str) -> dict[str, Any] | None:
        """One read-model row by column name (tests compare it with CEL)."""
        rows = self._rows(
            f"SELECT {', '.join(FACT_COLUMNS)} FROM segment_facts WHERE contact_id = ?",
            (contact_id,),
        )
        return None if not rows else dict(zip(FACT_COLUMNS, rows[0], strict=True))

    # -- segment definitions ---------------------------------------------------------------
    def put_segment(self, segment: segments_pb2.Segment) -> bool:
        """Store a new segment; False if the name is taken."""
        if self.segment(segment.name) is not None:
            return False
        self._rows(
            "INSERT INTO segments (name, data) VALUES (?, ?)",
            (segment.name, segment.SerializeToString()),
        )
        return True

    def segment(self, name: str) -> segments_pb2.Segment | None:
        """One segment by name."""
        rows = self._rows("SELECT data FROM segments WHERE name = ?", (name,))
        return segments_pb2.Segment.FromString(rows[0][0]) if rows else None

    def list_segments(self, after: str, limit: int) -> list[segments_pb2.Segment]:
        """Segments after `after`, by name."""
        rows = self._rows(
            "SELECT data FROM segments WHERE name > ? ORDER BY name LIMIT ?", (after, limit)
        )
        return [segments_pb2.Segment.FromString(r[0]) for r in rows]

    def delete_segment(self, name: str) -> bool:
        """Delete a segment; False if there was none."""
        if self.segment(name) is None:
            return False
        self._rows("DELETE FROM segments WHERE name = ?", (name,))
        return True
