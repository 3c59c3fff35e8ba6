"""Process roles: serve calls, deliver them, or both (`serve --role all|api|dispatch`).

`all` (the default) serves gRPC and runs the dispatcher in the same process. `api` serves
every service but never delivers: its commits nudge the dispatch processes of this machine
(`dispatch/nudges.py`) and, on PostgreSQL, any dispatcher through NOTIFY. `dispatch`
delivers (claims, batches, retries, waits, sync, retention) and serves only gRPC health,
which reports its readiness. The point of the split is that a TriggerCampaign's accept
path never shares an event loop, or a core, with the delivery of the steps it queued.
"""

from __future__ import annotations

import contextlib
import os

from switchboard.server.config.settings import Settings
from switchboard.server.dispatch.notify import RunNotifier
from switchboard.server.dispatch.nudges import Nudges, nudge_directory
from switchboard.server.dispatch.worker import Dispatcher


def store_identity(settings: Settings) -> str:
    """What names the store for every process that shares it: the PostgreSQL URL without
    its password, or the SQLite file's absolute path."""
    database = settings.database
    if database.url:
        head, _, tail = database.url.partition("@")
        return tail or head  # user:password@host/db -> host/db
    return os.path.realpath(database.path)


def worker_address(worker_listen: str, index: int) -> str:
    """Worker `index`'s own address: `worker_listen`'s port plus the index."""
    host, _, port = worker_listen.rpartition(":")
    return f"{host}:{int(port) + index}"


def open_nudges(
    settings: Settings, dispatcher: Dispatcher, notifier: RunNotifier, stack: contextlib.ExitStack
) -> Nudges | None:
    """Connect this process to the other role's processes on the same store (none for
    `all`, which delivers its own steps)."""
    role = settings.role
    if role == "all":
        return None
    directory = nudge_directory(store_identity(settings))
    if role == "api":

        def publish(run_ids: list[str]) -> None:
            for run_id in run_ids:
                notifier.publish(run_id)

        nudges = Nudges(directory, "api", on_runs=publish)
        dispatcher.wake_hooks.append(nudges.outbox_changed)
    else:
        nudges = Nudges(directory, "dispatch", on_outbox=dispatcher.wake)
        notifier.forward = nudges.run_changed
    nudges.open()
    stack.callback(nudges.close)
    return nudges
