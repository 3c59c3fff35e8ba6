"""Serving on every core: a supervisor forks N worker processes sharing one port.

The fork happens before any gRPC object exists (gRPC's core is not fork-safe once started).
Each worker runs its own event loop, server, store connections and dispatcher; they share
the listening port through SO_REUSEPORT (grpcio's default on Linux), so the kernel spreads
connections across them. SQLite serialises writers across processes; the outbox lease
keeps two workers from delivering the same step at once.

The supervisor forwards SIGTERM/SIGINT to every worker (each then stops gracefully),
restarts a worker that dies unexpectedly, and exits 0 when all workers stopped cleanly.
With the Prometheus exporter it serves the one metrics page, holding every worker's series
(`prometheus_page`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from switchboard.server.cache.siblings import Siblings
from switchboard.server.config.settings import Settings
from switchboard.server.config.telemetry import TelemetrySettings
from switchboard.server.store.select import prepare_database

log = logging.getLogger(__name__)
WorkerMain = Callable[[Settings, Siblings | None, int], None]
_RESTART_PAUSE_S = 1.0


def reserve_port(listen: str) -> tuple[str, socket.socket]:
    """Pin port 0 to a concrete free port all workers can share; keep the socket until they bind."""
    host, _, port = listen.rpartition(":")
    family = socket.AF_INET6 if host.startswith("[") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host.strip("[]"), int(port)))
    return f"{host}:{sock.getsockname()[1]}", sock


def supervise(
    settings: Settings,
    workers: int,
    worker_main: WorkerMain,
    on_ready: Callable[[Settings], None] | None = None,
) -> int:
    """Run `workers` copies of `worker_main` in child processes; return the exit code.

    `on_ready(settings)` runs once every worker serves, after the "serving" line, with the
    settings the workers got (ports pinned).
    """
    with _metrics_page(settings, workers) as telemetry_of:
        return _supervise(settings, workers, worker_main, telemetry_of, on_ready)


@contextlib.contextmanager
def _metrics_page(settings: Settings, workers: int) -> Iterator[Callable[[int], TelemetrySettings]]:
    """With the Prometheus exporter, serve the one page here and give each worker a unix
    socket to serve its own series on; yields the telemetry settings of worker `index`."""
    telemetry = settings.telemetry
    if telemetry.exporter != "prometheus":
        yield lambda index: telemetry
        return
    from switchboard.server.observability.prometheus_page import serve_worker_pages, worker_socket

    directory = Path(tempfile.mkdtemp(prefix="switchboard-metrics-"))
    try:
        try:
            close = serve_worker_pages(telemetry.prometheus_listen, directory, workers)
        except OSError as exc:
            print(
                f"switchboard: cannot serve metrics on {telemetry.prometheus_listen}: {exc}",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(2) from exc

        def telemetry_of(index: int) -> TelemetrySettings:
            socket_at = worker_socket(directory, index)
            return telemetry.model_copy(update={"prometheus_listen": socket_at})

        try:
            yield telemetry_of
        finally:
            close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _supervise(
    settings: Settings,
    workers: int,
    worker_main: WorkerMain,
    telemetry_of: Callable[[int], TelemetrySettings],
    on_ready: Callable[[Settings], None] | None,
) -> int:
    listen, reservation = reserve_port(settings.listen)
    settings = settings.model_copy(update={"listen": listen})
    inbound_reservation = None
    if settings.inbound.listen:  # the inbound webhook port is shared the same way
        inbound_listen, inbound_reservation = reserve_port(settings.inbound.listen)
        inbound = settings.inbound.model_copy(update={"listen": inbound_listen})
        settings = settings.model_copy(update={"inbound": inbound})
    connect_reservation = None
    if settings.connect.listen:  # and so is the Connect protocol port
        connect_listen, connect_reservation = reserve_port(settings.connect.listen)
        connect = settings.connect.model_copy(update={"listen": connect_listen})
        settings = settings.model_copy(update={"connect": connect})
    prepare_database(settings.database)  # once, before the workers race to create it

    def pinned(index: int) -> Settings:
        worker = worker_settings(settings, workers, index)
        return worker.model_copy(update={"telemetry": telemetry_of(index)})

    endpoints = Siblings.create(workers)
    ready_r, ready_w = os.pipe()
    children: dict[int, int] = {}
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    # Installed before the first fork (workers reset them) and before "serving" is printed,
    # so a SIGTERM that follows the announcement is always forwarded, never fatal here.
    def reload(signum: int, _frame: object) -> None:
        for pid in children:  # each worker reloads what may change (rate limits) itself
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, reload)
    for index in range(workers):
        children[_spawn(pinned(index), endpoints, index, ready_w, worker_main)] = index
    if not _wait_ready(ready_r, workers, children) and not stopping:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        print("switchboard: a worker failed to start (see above)", file=sys.stderr, flush=True)
        return 2
    reservation.close()
    if inbound_reservation is not None:
        inbound_reservation.close()
    if connect_reservation is not None:
        connect_reservation.close()
    delivering = _delivering(settings, workers)
    print(
        f"switchboard: serving gRPC on {listen} with {workers} workers{delivering}; Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    if on_ready is not None:
        on_ready(settings)
    failed = False
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        index = children.pop(pid, -1)
        if index < 0:
            continue
        code = os.waitstatus_to_exitcode(status)
        if stopping:
            # A worker still starting up (e.g. just restarted) dies of the SIGTERM we sent
            # before its graceful handler is in place: it stopped as asked.
            failed |= code not in (0, -signal.SIGTERM)
            continue
        log.error("worker %d (pid %d) exited with %d; restarting it", index, pid, code)
        time.sleep(_RESTART_PAUSE_S)
        children[_spawn(pinned(index), endpoints, index, ready_w, worker_main)] = index
    print("switchboard: stopped", file=sys.stderr, flush=True)
    return 1 if failed else 0


def worker_settings(settings: Settings, workers: int, index: int) -> Settings:
    """The settings of worker `index`: with `dispatch.processes = k` (role `all`), the last
    k workers deliver only and answer health on `dispatch.health_listen`, so that the kernel
    never hands them a connection; the others serve only."""
    dispatchers = settings.dispatch.processes
    if settings.role != "all" or not dispatchers:
        return settings
    if index < workers - dispatchers:
        return settings.model_copy(update={"role": "api"})
    return settings.model_copy(
        update={"role": "dispatch", "listen": settings.dispatch.health_listen}
    )


def check_roles(settings: Settings, workers: int) -> str | None:
    """Why `workers` cannot run with these settings' roles, or None."""
    dispatchers = settings.dispatch.processes
    if settings.role == "all" and dispatchers and dispatchers >= workers:
        return (
            f"dispatch.processes = {dispatchers} needs --workers of at least {dispatchers + 1} "
            "(one worker or more must serve calls)"
        )
    return None


def _delivering(settings: Settings, workers: int) -> str:
    dispatchers = settings.dispatch.processes
    if settings.role == "all" and dispatchers:
        return f" ({workers - dispatchers} serving, {dispatchers} delivering)"
    if settings.role != "all":
        return f" (role {settings.role})"
    return ""


def _spawn(
    settings: Settings, endpoints: list[Siblings], index: int, ready_w: int, worker_main: WorkerMain
) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        _stop_with_parent()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the worker handles it
        for i, endpoint in enumerate(endpoints):
            if i != index:
                endpoint.close()
        os.environ["SWITCHBOARD_WORKER_READY_FD"] = str(ready_w)
        worker_main(settings, endpoints[index], index)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        log.exception("worker %d failed", index)
    finally:
        os._exit(code)


def _stop_with_parent() -> None:
    """Ask Linux to send SIGTERM to this worker if the supervisor dies, so that a killed
    supervisor never leaves orphan workers holding the port."""
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0)
    if os.getppid() == 1:  # the supervisor died before prctl took effect
        os._exit(1)


def notify_ready() -> None:
    """Called by a worker once it serves; lets the supervisor announce the server."""
    fd = os.environ.pop("SWITCHBOARD_WORKER_READY_FD", None)
    if fd is not None:
        with contextlib.suppress(OSError):
            os.write(int(fd), b".")


def _wait_ready(fd: int, workers: int, children: dict[int, int]) -> bool:
    """True once every worker reported ready; False as soon as one exits before that."""
    seen = 0
    while seen < workers:
        readable, _, _ = select.select([fd], [], [], 0.2)
        if readable:
            seen += len(os.read(fd, workers - seen))
            continue
        for pid in list(children):
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                del children[pid]
                return False
    return True
