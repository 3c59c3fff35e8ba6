"""Bulk work is refused up front while the store's bulk queue already stands too long.

An import queued behind seconds of other bulk work answers late or not at all. In a soak
at 40 % over the load the machine could take, imports queued for up to 30 s and 1,114
failed with DEADLINE_EXCEEDED; the streams waiting held the server's call slots, so 11,991
other calls were refused as well (docs/performance.md, "Overload: imports refused early").
Refusing a new import at once, before it writes a row, tells its caller the truth while
retrying is still cheap, and lets the imports already admitted finish.
"""

from __future__ import annotations

from switchboard.server.errors import ResourceExhausted
from switchboard.server.store.base import Store

#: Bounds of the retry delay a refusal suggests: the backlog itself, which is about how
#: long the queued work takes to clear once no more joins it.
MIN_RETRY_S = 0.5
MAX_RETRY_S = 30.0


def admit_bulk(store: Store, limit_s: float, what: str, time_left_s: float | None = None) -> None:
    """Raise ResourceExhausted (with a retry delay) if bulk work in this process is
    `limit_s` or more behind, or more behind than the `time_left_s` the call has before its
    deadline (it would expire before its first write); `limit_s` 0 admits everything.

    Checked before the work writes anything, so a refused call has changed nothing.
    """
    if limit_s <= 0:
        return
    backlog = store.bulk_backlog_s()
    bound = limit_s if time_left_s is None else min(limit_s, time_left_s)
    if backlog < bound:
        return
    retry = min(max(backlog, MIN_RETRY_S), MAX_RETRY_S)
    why = (
        f"limits.import_backlog_s = {limit_s:g}"
        if bound == limit_s
        else f"more than the {max(time_left_s or 0.0, 0.0):.1f} s left before the deadline"
    )
    raise ResourceExhausted(
        f"server busy with bulk writes: they are {backlog:.1f} s behind ({why}); "
        f"{what} wrote nothing; retry in {retry:.1f} s",
        retry_after_s=retry,
    )
