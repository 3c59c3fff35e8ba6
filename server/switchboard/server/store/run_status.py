"""ListRuns' status filter as SQL both stores' planners can match to a partial index."""

from __future__ import annotations

from switchboard.v1 import campaigns_pb2

# The states of `runs_open`'s predicate, as the migration writes them.
_OPEN = (campaigns_pb2.RUN_STATUS_PENDING, campaigns_pb2.RUN_STATUS_RUNNING)
OPEN_STATES = frozenset(_OPEN)


def run_status_sql(status: int) -> str:
    """`status = N`, spelt out, with the open-runs predicate for PENDING and RUNNING.

    Spelt out, not bound: SQLite matches a partial index only to a literal, and only when
    the query repeats the index's predicate, so `status = 1` alone would miss `runs_open`.
    PostgreSQL gets the same text.
    """
    value = int(status)  # an enum value: never text a caller wrote
    if value in _OPEN:
        return f"status IN ({_OPEN[0]}, {_OPEN[1]}) AND status = {value}"
    return f"status = {value}"
