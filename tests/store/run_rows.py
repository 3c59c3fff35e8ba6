"""Run rows written straight through a store's transaction, for the ListRuns filter tests."""

from __future__ import annotations

from collections.abc import Callable

from switchboard.server.rules.plan import Plan
from switchboard.server.store.base import WriteTx
from switchboard.v1 import campaigns_pb2


def finished_runs(start: int, count: int, failed_every: int) -> Callable[[WriteTx], None]:
    """Runs r<start>… of events a and b in turn, three to a second; every `failed_every`th
    FAILED (0: none), the others SUCCEEDED."""

    def put(tx: WriteTx) -> None:
        for i in range(start, start + count):
            run = campaigns_pb2.Run(id=f"r{i:06d}", event=("a", "b")[i % 2], contact_id="c")
            run.created_at.seconds = 1000 + i // 3  # ties in time: the id orders them
            run.status = campaigns_pb2.RUN_STATUS_PENDING
            tx.put_run(run, Plan({}, ()))
            failed = failed_every and i % failed_every == 0
            run.status = (
                campaigns_pb2.RUN_STATUS_FAILED if failed else campaigns_pb2.RUN_STATUS_SUCCEEDED
            )
            tx.put_run(run)  # the status changes after the insert, as delivery does

    return put


def pending_runs(start: int, count: int, event: str) -> Callable[[WriteTx], None]:
    """Runs r<start>… of `event`, three to a second, left PENDING."""

    def put(tx: WriteTx) -> None:
        for i in range(start, start + count):
            run = campaigns_pb2.Run(
                id=f"r{i:06d}",
                event=event,
                contact_id="c",
                status=campaigns_pb2.RUN_STATUS_PENDING,
            )
            run.created_at.seconds = 1000 + i // 3
            tx.put_run(run, Plan({}, ()))

    return put


def set_status(ids: list[str], status: int) -> Callable[[WriteTx], None]:
    """Move the runs `ids` to `status`, as the dispatcher does."""

    def put(tx: WriteTx) -> None:
        for run_id in ids:
            run = tx.run(run_id)
            assert run is not None
            run.status = status
            tx.put_run(run)

    return put
