"""One Prometheus scrape page for several worker processes.

The OpenTelemetry Prometheus reader turns the meter's data into prometheus_client metric
families when the page is scraped, inside the process that recorded them. prometheus_client's
multiprocess mode (files in `PROMETHEUS_MULTIPROC_DIR`) only covers metrics made with
prometheus_client's own classes, so it cannot see them; and every worker binding the one
metrics port fails with "Address already in use". So, with several workers:

- each worker serves its whole registry, in the text format, on a unix socket of its own in
  a private directory the supervisor made (`serve_registry`): no port, nothing on the
  network;
- the supervisor serves the one page on `telemetry.prometheus_listen` (`WorkerPages`): on
  each scrape it reads every worker's socket and merges the families, adding a `worker`
  label (the worker's index, which a restarted worker keeps, so its series go on), and
  `switchboard_worker_up{worker}`, 1 when that worker answered this scrape.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

log = logging.getLogger(__name__)
UNIX_PREFIX = "unix:"
"""`telemetry.prometheus_listen` of a worker: serve the raw page on this unix socket."""
_READ_TIMEOUT_S = 5.0


def worker_socket(directory: Path, index: int) -> str:
    """Where worker `index` serves its metrics, as a `prometheus_listen` value."""
    return f"{UNIX_PREFIX}{directory / f'worker-{index}.sock'}"


def serve_registry(path: str, registry: CollectorRegistry = REGISTRY) -> Callable[[], None]:
    """Write `registry` in the text format to each connection on unix socket `path`, from a
    thread; returns the function that stops serving."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)  # left by a worker that died before this one took its place

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.sendall(generate_latest(registry))

    server = socketserver.UnixStreamServer(path, Handler)
    thread = threading.Thread(target=server.serve_forever, name="metrics-socket", daemon=True)
    thread.start()

    def close() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)

    return close


class WorkerPages:
    """A prometheus_client collector: every worker's families, each sample labelled with
    its worker (see the module docstring)."""

    def __init__(self, directory: Path, workers: int) -> None:
        self._paths = [
            worker_socket(directory, i).removeprefix(UNIX_PREFIX) for i in range(workers)
        ]

    def collect(self) -> Iterator[Metric]:
        """Read every worker's page now and merge them."""
        up = GaugeMetricFamily(
            "switchboard_worker_up",
            "1 when the worker's metrics were read for this scrape, 0 when it did not answer "
            "(e.g. restarting).",
            labels=["worker"],
        )
        merged: dict[str, Metric] = {}
        for index, path in enumerate(self._paths):
            worker = str(index)
            try:
                families = list(text_string_to_metric_families(_read(path)))
            except (OSError, ValueError) as exc:
                log.debug("worker %d metrics unavailable: %s", index, exc)
                up.add_metric([worker], 0)
                continue
            up.add_metric([worker], 1)
            for family in families:
                into = merged.get(family.name)
                if into is None:
                    into = Metric(family.name, family.documentation, family.type, family.unit)
                    merged[family.name] = into
                into.samples.extend(
                    s._replace(labels={**s.labels, "worker": worker}) for s in family.samples
                )
        yield up
        yield from merged.values()


def _read(path: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
        conn.settimeout(_READ_TIMEOUT_S)
        conn.connect(path)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8")


def serve_worker_pages(listen: str, directory: Path, workers: int) -> Callable[[], None]:
    """Serve the merged page of `workers` workers on `listen` (host:port) at `/metrics`;
    returns the function that stops serving.

    Raises:
        OSError: the port cannot be bound (e.g. already in use).
    """
    registry = CollectorRegistry()
    registry.register(WorkerPages(directory, workers))
    host, _, port = listen.rpartition(":")
    server, thread = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
    log.info("prometheus metrics of %d workers on http://%s/metrics", workers, listen)

    def close() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return close
