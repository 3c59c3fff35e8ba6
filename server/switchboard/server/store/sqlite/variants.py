"""A/B variant statements: each variant run's row, and the results per variant."""

from __future__ import annotations

import sqlite3

from switchboard.server.store.base import VariantCount
from switchboard.v1 import campaigns_pb2

# Per variant: the contacts with a run in the range (first run's time), and those of them
# with an activity of the conversion type at or after it.
_RESULTS = """
SELECT e.variant, count(*), sum(EXISTS (
    SELECT 1 FROM activities AS a
    WHERE a.contact_id = e.contact_id AND a.type = ? AND a.occurred_us >= e.first_us))
FROM (
    SELECT variant, contact_id, min(created_us) AS first_us FROM run_variants
    WHERE event = ? AND created_us >= ? AND created_us < ?
    GROUP BY variant, contact_id) AS e
GROUP BY e.variant ORDER BY e.variant
"""


class VariantQueries:
    """Variant statements; expects `self._db` from the concrete class."""

    __slots__ = ()
    _db: sqlite3.Connection

    def put_run_variant(self, run: campaigns_pb2.Run) -> None:
        created = run.created_at.seconds * 1_000_000 + run.created_at.nanos // 1000
        self._db.execute(
            "INSERT INTO run_variants (run_id, event, variant, contact_id, created_us) "
            "VALUES (?, ?, ?, ?, ?)",
            (run.id, run.event, run.variant, run.contact_id, created),
        )

    def variant_results(
        self, event: str, since_us: int, until_us: int, conversion_type: str
    ) -> list[VariantCount]:
        rows = self._db.execute(_RESULTS, (conversion_type, event, since_us, until_us))
        return [VariantCount(r[0], int(r[1]), int(r[2] or 0)) for r in rows]
