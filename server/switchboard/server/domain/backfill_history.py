"""Setting up a history backfill: which calls, which contacts, where it starts, how many.

The queueing itself is `runs/backfill_history.py`; the window and progress loop is shared
with the current-state backfill in `domain/backfill.py`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from switchboard.server.connectors.base import Connector
from switchboard.server.domain.segments import SegmentService
from switchboard.server.errors import FailedPrecondition
from switchboard.server.rules.plan import PlanStep
from switchboard.server.runs.backfill_history import (
    HistoryCalls,
    HistoryPosition,
    count_events,
    history_position,
    start_bounds,
)
from switchboard.server.store.base import Store

_COUNT_PAGE = 5000  # log rows read per counting transaction
_MEMBER_PAGE = 5000


def history_calls(connector: Connector, contact_step: PlanStep) -> HistoryCalls:
    """The connector's history calls; FAILED_PRECONDITION when it has none."""
    calls = HistoryCalls.for_connector(connector.name, connector.actions, contact_step)
    if not calls.types():
        raise FailedPrecondition(
            f"connector {connector.name!r} has no call to replay history with: it needs a "
            f"contact action ({contact_step.action!r}), a purchase or conversion action, "
            "or an event-tracking action (events.track, track)"
        )
    return calls


async def segment_members(segments: SegmentService, name: str) -> frozenset[str] | None:
    """The segment's current members (None: no segment, everyone)."""
    if not name:
        return None
    compiled = await segments.compiled(name)  # NOT_FOUND for an unknown segment
    found: set[str] = set()
    after = ""
    while page := await segments.member_ids(compiled, after, _MEMBER_PAGE):
        found.update(page)
        after = page[-1]
    return frozenset(found)


async def resume_or_start(
    store: Store,
    calls: HistoryCalls,
    since_us: int,
    segment: str,
    members: frozenset[str] | None,
    restart: bool,
) -> tuple[HistoryPosition, bool]:
    """The position to continue from and whether it is a fresh start.

    A finished backfill asked again with another `since` or segment starts afresh; one
    stopped part way is continued only with the same ones (else FAILED_PRECONDITION).
    """
    stored = await store.read(lambda tx: history_position(tx, calls.connector))
    same = stored is not None and (stored.since_us, stored.segment) == (since_us, segment)
    if stored is not None and not restart:
        if same:
            return stored, False
        if not stored.done:
            raise FailedPrecondition(
                f"a history backfill of {calls.connector!r} since {stored.since_us} (us)"
                f"{_of(stored.segment)} stopped part way: continue it with the same since "
                "and segment, or pass restart"
            )
    after, through = await store.read(lambda tx: start_bounds(tx, since_us))
    total = await _count(store.read, calls, after, through, members)
    return HistoryPosition(since_us, segment, through, after, total, done=after >= through), True


def _of(segment: str) -> str:
    return f" of segment {segment!r}" if segment else ""


async def _count(
    read: Callable[..., Awaitable[tuple[int, int]]],
    calls: HistoryCalls,
    after: int,
    through: int,
    members: frozenset[str] | None,
) -> int:
    # In pages of their own transactions: a long log is not read in one snapshot.
    total = 0
    types = calls.types()
    while after < through:
        found, after = await read(
            lambda tx, a=after: count_events(tx, a, through, types, members, _COUNT_PAGE)
        )
        total += found
    return total
