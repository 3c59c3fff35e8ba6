"""SQL for the outbox and its dead letters in PostgreSQL (mixed into `PostgresTx`).

Claims run at READ COMMITTED with `SELECT … FOR UPDATE SKIP LOCKED`: replicas claiming at
the same moment lock disjoint rows, and none waits for another. Per-contact order holds as
in SQLite (a row waits while an earlier row of its contact and connector is still in the
outbox), across replicas too, because of two things:

- the "earlier row" test is a plain read, which sees rows another claimer has locked, so a
  contact's second row stays blocked while its first is being claimed elsewhere;
- `enqueue_step` takes a transaction-scoped advisory lock on the contact before it draws an
  id, so a contact's rows get ids in the order their transactions commit. Without it, a
  transaction that drew a lower id but committed later could slip in front of a row
  already in flight, and the contact would have two deliveries at once.

`enqueue_step` also sends a NOTIFY on `OUTBOX_CHANNEL` (delivered at commit, once per
transaction), so that every replica's dispatcher wakes at once instead of at its next poll.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow

from switchboard.server.rules.plan import Plan
from switchboard.server.store.base import ClaimFilter, DeadLetter, OutboxItem

OUTBOX_CHANNEL = "switchboard_outbox"
# The first key of the per-contact enqueue lock; the second is the contact's hash.
_CONTACT_LOCK = 0x5357_4243

# The connectors that have rows at all, one index seek each (a loose index scan).
_CONNECTORS_SQL = """
WITH RECURSIVE c(name) AS (
    SELECT min(connector) FROM outbox
    UNION ALL
    SELECT (SELECT min(connector) FROM outbox WHERE connector > c.name) FROM c
    WHERE c.name IS NOT NULL
)
SELECT name FROM c WHERE name IS NOT NULL
"""

# One connector's due rows, oldest first (see `sqlite/outbox.py` for the ordering rule).
# Rows another replica is claiming right now are skipped, not waited for.
_DUE_SQL = """
SELECT o.id, o.run_id, o.step_index, o.attempts, o.idempotency_key, r.plan, o.connector,
       o.contact_id, o.advance, o.available_us, o.traceparent
FROM outbox o JOIN runs r ON r.id = o.run_id
WHERE o.connector = %(connector)s AND o.available_us <= %(now)s AND o.lease_us <= %(now)s
  AND (%(unordered)s OR o.contact_id = ''
       OR NOT EXISTS (SELECT 1 FROM outbox p WHERE p.contact_id = o.contact_id
                      AND p.connector = o.connector AND p.id < o.id))
ORDER BY o.available_us, o.id
LIMIT %(budget)s
FOR UPDATE OF o SKIP LOCKED
"""

_DEAD_COLUMNS = (
    "id, run_id, step_index, connector, action, contact_id, idempotency_key, reason, "
    "attempts, last_error, dead_us"
)


def _dead(row: Any) -> DeadLetter:
    return DeadLetter(*row)


class OutboxQueries:
    """Outbox and dead-letter statements; expects `self._db` from the concrete class."""

    __slots__ = ("_notified",)
    _db: psycopg.Connection[TupleRow]
    _notified: bool  # a NOTIFY was sent in this transaction

    def enqueue_step(
        self,
        run_id: str,
        step_index: int,
        connector: str,
        idempotency_key: str,
        available_us: int,
        advance: bool = True,
    ) -> None:
        # The lock is held until commit: the next enqueuer of this contact draws its id after.
        self._db.execute(
            "SELECT pg_advisory_xact_lock(%s, hashtext(contact_id)) FROM runs WHERE id = %s",
            (_CONTACT_LOCK, run_id),
        )
        self._db.execute(
            "INSERT INTO outbox (run_id, step_index, connector, idempotency_key, available_us, "
            "contact_id, traceparent, advance) "
            "SELECT %(run)s, %(step)s, %(connector)s, %(key)s, %(available)s, "
            "(SELECT contact_id FROM runs WHERE id = %(run)s), "
            "(SELECT traceparent FROM runs WHERE id = %(run)s), %(advance)s",
            {
                "run": run_id,
                "step": step_index,
                "connector": connector,
                "key": idempotency_key,
                "available": available_us,
                "advance": advance,
            },
        )
        if not self._notified:
            self._db.execute("SELECT pg_notify(%s, '')", (OUTBOX_CHANNEL,))
            self._notified = True

    def claim_outbox(
        self, now_us: int, lease_until_us: int, limit: int, flt: ClaimFilter | None = None
    ) -> list[OutboxItem]:
        if self._db.info.transaction_status == TransactionStatus.IDLE:
            # The claim opens its transaction: READ COMMITTED, so that a row another replica
            # claimed and committed meanwhile is re-checked (and left) rather than failing
            # the whole claim with a serialization error.
            self._db.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
        flt = flt or ClaimFilter(budgets={}, default_budget=limit)
        rows: list[Any] = []
        for (connector,) in self._db.execute(_CONNECTORS_SQL).fetchall():
            budget = min(limit, flt.budgets.get(connector, flt.default_budget))
            if budget <= 0:
                continue  # full, out of rate tokens, or its breaker is open
            rows += self._db.execute(
                _DUE_SQL,
                {
                    "connector": connector,
                    "now": now_us,
                    "unordered": connector in flt.unordered,
                    "budget": budget,
                },
            ).fetchall()
        rows.sort(key=lambda r: (r[9], r[0]))  # oldest first across connectors
        picked = rows[:limit]
        # Claiming a row counts its attempt, in the claim's own commit (see sqlite/outbox.py).
        # Rows locked but not picked are released at commit, untouched.
        if picked:
            self._db.execute(
                "UPDATE outbox SET lease_us = %s, attempts = attempts + 1 WHERE id = ANY(%s)",
                (lease_until_us, [r[0] for r in picked]),
            )
        return [
            OutboxItem(
                r[0], r[1], r[2], r[3], r[4], Plan.from_json(r[5]), r[6], r[7], bool(r[8]), r[10]
            )
            for r in picked
        ]

    def finish_outbox(self, item_id: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE id = %s", (item_id,))

    def hold_step(self, run_id: str, step_index: int, available_us: int) -> None:
        self._db.execute(
            "UPDATE outbox SET available_us = %s "
            "WHERE run_id = %s AND step_index = %s AND attempts = 0",
            (available_us, run_id, step_index),
        )

    def retry_outbox(self, item_id: int, attempts: int, available_us: int) -> None:
        self._db.execute(
            "UPDATE outbox SET attempts = %s, available_us = %s, lease_us = 0 WHERE id = %s",
            (attempts, available_us, item_id),
        )

    def outbox_item(self, run_id: str, step_index: int) -> OutboxItem | None:
        r = self._db.execute(
            "SELECT o.id, o.run_id, o.step_index, o.attempts, o.idempotency_key, r.plan, "
            "o.connector, o.contact_id, o.advance, o.traceparent "
            "FROM outbox o JOIN runs r ON r.id = o.run_id "
            "WHERE o.run_id = %s AND o.step_index = %s",
            (run_id, step_index),
        ).fetchone()
        if r is None:
            return None
        plan = Plan.from_json(r[5])
        return OutboxItem(r[0], r[1], r[2], r[3], r[4], plan, r[6], r[7], bool(r[8]), r[9])

    def outbox_depth(self) -> int:
        row = self._db.execute("SELECT count(*) FROM outbox").fetchone()
        return int(row[0]) if row else 0

    # -- wait steps ----------------------------------------------------------------------
    def add_wait(self, run_id: str, step_index: int, source: str, key: str) -> None:
        self._db.execute(
            "INSERT INTO waits (run_id, step_index, source, key) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (run_id, step_index) DO UPDATE SET source = excluded.source, "
            "key = excluded.key",
            (run_id, step_index, source, key),
        )

    def delete_wait(self, run_id: str, step_index: int) -> None:
        self._db.execute(
            "DELETE FROM waits WHERE run_id = %s AND step_index = %s", (run_id, step_index)
        )

    def waits_for(self, source: str, key: str) -> list[tuple[str, int]]:
        rows = self._db.execute(
            "SELECT run_id, step_index FROM waits WHERE source = %s AND key = %s "
            "ORDER BY run_id, step_index",
            (source, key),
        )
        return [(r[0], r[1]) for r in rows]

    def update_plan(self, run_id: str, plan: Plan) -> None:
        self._db.execute("UPDATE runs SET plan = %s WHERE id = %s", (plan.to_json(), run_id))

    # -- dead letters --------------------------------------------------------------------
    def add_dead_letter(self, letter: DeadLetter) -> None:
        # A later letter for the same step replaces the earlier (SQLite's INSERT OR REPLACE
        # drops every row a new one conflicts with: the id's and the step's, per contact).
        self._db.execute(
            "DELETE FROM dead_letters WHERE id = %s "
            "OR (run_id = %s AND step_index = %s AND contact_id = %s)",
            (letter.id, letter.run_id, letter.step_index, letter.contact_id),
        )
        self._db.execute(
            f"INSERT INTO dead_letters ({_DEAD_COLUMNS}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                letter.id,
                letter.run_id,
                letter.step_index,
                letter.connector,
                letter.action,
                letter.contact_id,
                letter.idempotency_key,
                letter.reason,
                letter.attempts,
                letter.last_error,
                letter.dead_us,
            ),
        )

    def list_dead_letters(self, connector: str, after_id: str, limit: int) -> list[DeadLetter]:
        # Planned for its values every time, never prepared: a generic plan (psycopg prepares
        # after five calls) takes any connector for a common one and walks every letter in id
        # order to find a rare one's (127 ms a page at 1,000,000 letters).
        by_connector = "connector = %s AND " if connector else ""
        args = (connector, after_id, limit) if connector else (after_id, limit)
        rows = self._db.execute(
            f"SELECT {_DEAD_COLUMNS} FROM dead_letters WHERE {by_connector}id > %s "
            "ORDER BY id LIMIT %s",
            args,
            prepare=False,
        )
        return [_dead(r) for r in rows]

    def select_dead_letters(
        self, ids: list[str] | None, connector: str, limit: int
    ) -> list[DeadLetter]:
        if ids is not None:
            rows = self._db.execute(
                f"SELECT {_DEAD_COLUMNS} FROM dead_letters WHERE id = ANY(%s) ORDER BY id",
                (ids,),
            )
            return [_dead(r) for r in rows]
        return self.list_dead_letters(connector, "", limit)

    def delete_dead_letter(self, letter_id: str) -> None:
        self._db.execute("DELETE FROM dead_letters WHERE id = %s", (letter_id,))
