"""How much work an SQLite read does, counted in VM instructions: a look-up that stays on
an index costs the same however much unrelated data the tables hold; a scan grows with it."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from switchboard.server.store.base import WriteTx

T = TypeVar("T")


def vm_steps(tx: WriteTx, read: Callable[[], T]) -> tuple[int, T]:
    """(SQLite VM instructions in hundreds that `read` took on `tx`'s connection, its answer)."""
    db: sqlite3.Connection = tx._db  # type: ignore[attr-defined]
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0

    db.set_progress_handler(tick, 100)
    try:
        answer = read()
    finally:
        db.set_progress_handler(None, 100)
    return count[0], answer
