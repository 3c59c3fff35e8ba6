"""SQL for the outbox and its dead letters (mixed into `SqliteTx`)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from switchboard.server.rules.plan import Plan
from switchboard.server.store.base import ClaimFilter, DeadLetter, OutboxItem

# The connectors that have rows at all, one index seek each (a DISTINCT would read the index).
_CONNECTORS_SQL = """
WITH RECURSIVE c(name) AS (
    SELECT min(connector) FROM outbox
    UNION ALL
    SELECT (SELECT min(connector) FROM outbox WHERE connector > c.name) FROM c
    WHERE c.name IS NOT NULL
)
SELECT name FROM c WHERE name IS NOT NULL
"""

# One connector's due rows, oldest first, read along (connector, available_us): a claim
# costs what it takes, not the size of the backlog. A row is due when its time has come and
# no worker holds it. With per-contact ordering, a row also waits while an earlier row of
# the same contact and connector is still in the outbox (in flight, retrying or merely due):
# that keeps a contact's steps in order, and a failing step holds back only that contact's
# later steps for that connector.
_DUE_SQL = """
SELECT o.id, o.run_id, o.step_index, o.attempts, o.idempotency_key, r.plan, o.connector,
       o.contact_id, o.advance, o.available_us, o.traceparent
FROM outbox o JOIN runs r ON r.id = o.run_id
WHERE o.connector = :connector AND o.available_us <= :now AND o.lease_us <= :now
  AND (:unordered OR o.contact_id = ''
       OR NOT EXISTS (SELECT 1 FROM outbox p WHERE p.contact_id = o.contact_id
                      AND p.connector = o.connector AND p.id < o.id))
ORDER BY o.available_us, o.id
LIMIT :budget
"""

_DEAD_COLUMNS = (
    "id, run_id, step_index, connector, action, contact_id, idempotency_key, reason, "
    "attempts, last_error, dead_us"
)


def _dead(row: Any) -> DeadLetter:
    return DeadLetter(*row)


class OutboxQueries:
    """Outbox and dead-letter statements; expects `self._db` from the concrete class."""

    __slots__ = ()
    _db: sqlite3.Connection

    def enqueue_step(
        self,
        run_id: str,
        step_index: int,
        connector: str,
        idempotency_key: str,
        available_us: int,
        advance: bool = True,
    ) -> None:
        # The contact and the trace context come from the run.
        self._db.execute(
            "INSERT INTO outbox (run_id, step_index, connector, idempotency_key, available_us, "
            "contact_id, traceparent, advance) VALUES (?, ?, ?, ?, ?, "
            "(SELECT contact_id FROM runs WHERE id = ?), "
            "(SELECT traceparent FROM runs WHERE id = ?), ?)",
            (
                run_id,
                step_index,
                connector,
                idempotency_key,
                available_us,
                run_id,
                run_id,
                int(advance),
            ),
        )

    def claim_outbox(
        self, now_us: int, lease_until_us: int, limit: int, flt: ClaimFilter | None = None
    ) -> list[OutboxItem]:
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
        # Claiming a row counts its attempt, in the claim's own commit: an attempt cut short
        # by a crash still uses up the retry budget, at no extra commit per attempt. The
        # items keep the count from before this claim; an attempt that is not made (an open
        # breaker) writes the old count back through `retry_outbox`.
        self._db.executemany(
            "UPDATE outbox SET lease_us = ?, attempts = attempts + 1 WHERE id = ?",
            [(lease_until_us, r[0]) for r in picked],
        )
        return [
            OutboxItem(
                r[0], r[1], r[2], r[3], r[4], Plan.from_json(r[5]), r[6], r[7], bool(r[8]), r[10]
            )
            for r in picked
        ]

    def finish_outbox(self, item_id: int) -> None:
        self._db.execute("DELETE FROM outbox WHERE id = ?", (item_id,))

    def hold_step(self, run_id: str, step_index: int, available_us: int) -> None:
        self._db.execute(
            "UPDATE outbox SET available_us = ? "
            "WHERE run_id = ? AND step_index = ? AND attempts = 0",
            (available_us, run_id, step_index),
        )

    def retry_outbox(self, item_id: int, attempts: int, available_us: int) -> None:
        self._db.execute(
            "UPDATE outbox SET attempts = ?, available_us = ?, lease_us = 0 WHERE id = ?",
            (attempts, available_us, item_id),
        )

    def outbox_item(self, run_id: str, step_index: int) -> OutboxItem | None:
        r = self._db.execute(
            "SELECT o.id, o.run_id, o.step_index, o.attempts, o.idempotency_key, r.plan, "
            "o.connector, o.contact_id, o.advance, o.traceparent "
            "FROM outbox o JOIN runs r ON r.id = o.run_id "
            "WHERE o.run_id = ? AND o.step_index = ?",
            (run_id, step_index),
        ).fetchone()
        if r is None:
            return None
        plan = Plan.from_json(r[5])
        return OutboxItem(r[0], r[1], r[2], r[3], r[4], plan, r[6], r[7], bool(r[8]), r[9])

    # -- wait steps ----------------------------------------------------------------------
    def add_wait(self, run_id: str, step_index: int, source: str, key: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO waits (run_id, step_index, source, key) VALUES (?, ?, ?, ?)",
            (run_id, step_index, source, key),
        )

    def delete_wait(self, run_id: str, step_index: int) -> None:
        self._db.execute(
            "DELETE FROM waits WHERE run_id = ? AND step_index = ?", (run_id, step_index)
        )

    def waits_for(self, source: str, key: str) -> list[tuple[str, int]]:
        cur = self._db.execute(
            "SELECT run_id, step_index FROM waits WHERE source = ? AND key = ? "
            "ORDER BY run_id, step_index",
            (source, key),
        )
        return [(r[0], r[1]) for r in cur]

    def update_plan(self, run_id: str, plan: Plan) -> None:
        self._db.execute(
            "UPDATE runs SET plan = ? WHERE id = ?",
            (plan.to_json(), run_id),
        )

    def outbox_depth(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    # -- dead letters --------------------------------------------------------------------
    def add_dead_letter(self, letter: DeadLetter) -> None:
        self._db.execute(
            f"INSERT OR REPLACE INTO dead_letters ({_DEAD_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        # The connector only when one is asked for, so `dead_letters_connector` serves it:
        # `(? = '' OR connector = ?)` walked every letter in id order to find a rare
        # connector's (62 ms a page at 1,000,000 letters).
        by_connector = "connector = ? AND " if connector else ""
        args = (connector, after_id, limit) if connector else (after_id, limit)
        cur = self._db.execute(
            f"SELECT {_DEAD_COLUMNS} FROM dead_letters WHERE {by_connector}id > ? "
            "ORDER BY id LIMIT ?",
            args,
        )
        return [_dead(r) for r in cur]

    def select_dead_letters(
        self, ids: list[str] | None, connector: str, limit: int
    ) -> list[DeadLetter]:
        if ids is not None:
            cur = self._db.execute(
                f"SELECT {_DEAD_COLUMNS} FROM dead_letters "
                "WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
                (json.dumps(ids),),
            )
            return [_dead(r) for r in cur]
        return self.list_dead_letters(connector, "", limit)

    def delete_dead_letter(self, letter_id: str) -> None:
        self._db.execute("DELETE FROM dead_letters WHERE id = ?", (letter_id,))
