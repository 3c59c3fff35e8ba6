"""Start the whole cluster on loopback, run the failover proof, stop what was started."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from bench.cluster import checks, cpu
from bench.cluster.checks import DeliveryCheck, WriteCheck
from bench.cluster.load import LoadResult, drive
from bench.cluster.nginx import Nginx, find_nginx
from bench.cluster.peer import RecordingPeer
from bench.cluster.replicas import STEPS, ClusterConfig, Replica, render_config
from tests.postgres_server import PostgresServer, find_postgres
from tests.redis_server import RedisServer, find_redis_server


def missing_parts() -> str:
    """Why the cluster cannot run here (installing the Debian packages when root); empty if
    PostgreSQL, redis-server and nginx are all available."""
    for find in (find_postgres, find_redis_server, find_nginx):
        found, why = find()
        if not found:
            return why
    return ""


class Cluster:
    """PostgreSQL, redis-server, the recording peer, `replicas` Switchboard processes and
    nginx in front of them; `close()` stops each by its pid."""

    def __init__(self, replicas: int = 3, rate_per_s: float = 20.0) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="switchboard-cluster-"))
        self.rate_per_s = rate_per_s
        self._nginx_binary = _found(find_nginx)
        self.postgres: PostgresServer | None = None
        self.redis: RedisServer | None = None
        self.peer = RecordingPeer()
        self.replicas: list[Replica] = []
        self.nginx: Nginx | None = None
        try:
            self._start(replicas)
        except BaseException:
            self.close()
            raise

    def _start(self, count: int) -> None:
        self.postgres = PostgresServer(_found(find_postgres))
        self.database_url = self.postgres.create_database("cluster")
        self.redis = RedisServer(_found(find_redis_server), self.workdir / "redis")
        config = self.workdir / "switchboard.toml"
        cfg = ClusterConfig(self.database_url, self.redis.url, self.peer.url, self.rate_per_s)
        config.write_text(render_config(cfg))
        self.replicas = [Replica(f"replica-{i}", config, self.workdir) for i in range(count)]
        # The first applies the migrations; the others start together (advisory lock).
        self.replicas[0].start()
        with ThreadPoolExecutor(len(self.replicas)) as pool:
            list(pool.map(Replica.start, self.replicas[1:]))
        self.balance(count)

    def balance(self, count: int) -> Nginx:
        """(Re)start nginx in front of the first `count` replicas."""
        if self.nginx is not None:
            self.nginx.stop()
            self.nginx = None
        self.nginx = Nginx(self._nginx_binary, [r.port for r in self.replicas[:count]])
        return self.nginx

    def log_problems(self, limit: int = 20) -> list[str]:
        """The replicas' last WARNING and ERROR lines (tracebacks cut), to explain a failure."""
        found: list[str] = []
        for replica in self.replicas:
            for line in replica.log_tail(2_000_000).splitlines():
                if '"level": "WARNING"' in line or '"level": "ERROR"' in line:
                    found.append(f"{replica.name}: {line[:400]}")
        return found[-limit:]

    def cpu_parts(self) -> dict[str, list[int]]:
        """Root pids of each part, for CPU accounting (the driver is this process)."""
        assert self.postgres is not None
        assert self.redis is not None
        assert self.nginx is not None
        return {
            "replicas": [r.pid for r in self.replicas],
            "postgres": [self.postgres.proc.pid],
            "nginx": [self.nginx.proc.pid],
            "redis": [self.redis.proc.pid],
            "driver": [os.getpid()],
        }

    def close(self, keep_logs: bool = False) -> None:
        """Stop everything this cluster started, by pid, in reverse order; `keep_logs` keeps
        the work directory (the replicas' logs) for a look at what went wrong."""
        if self.nginx is not None:
            self.nginx.stop()
        for replica in self.replicas:
            replica.stop()
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
        self.peer.close()
        if not keep_logs:
            shutil.rmtree(self.workdir, ignore_errors=True)


def _found(find: Callable[[], tuple[str | None, str]]) -> str:
    path, why = find()
    if not path:
        raise RuntimeError(why)
    return str(path)


@dataclass
class ProofReport:
    """The failover proof's figures."""

    load: LoadResult
    attempts: Counter[str]
    writes: WriteCheck
    deliveries: DeliveryCheck
    pending_steps: int
    rate_per_s: float
    measured_rate: float
    killed_pid: int
    down_s: float
    settle_s: float
    commits: int  # PostgreSQL transactions committed / rolled back in the run's database
    rollbacks: int

    @property
    def rate_within_10_percent(self) -> bool:
        """The shared connector limit held across the replicas."""
        return abs(self.measured_rate - self.rate_per_s) <= 0.1 * self.rate_per_s

    @property
    def ok(self) -> bool:
        """Every check passed."""
        return (
            self.writes.ok
            and self.deliveries.ok
            and not self.load.failures
            and checks.caller_errors_ok(self.attempts)
            and self.pending_steps == 0
            and self.rate_within_10_percent
        )

    def lines(self) -> list[str]:
        """The report, one figure a line."""
        load, d, w = self.load, self.deliveries, self.writes
        return [
            f"load: {load.elapsed_s:.1f} s, {load.calls} calls ok "
            f"({len(load.upserts)} upserts, {load.reads} reads, {len(load.runs)} triggers), "
            f"{load.throughput:.0f} calls/s",
            f"failover: replica pid {self.killed_pid} killed -9, back after {self.down_s:.1f} s",
            f"attempts seen by nginx: {dict(sorted(self.attempts.items()))}",
            f"calls failed after the client's retries: {sum(load.failures.values())} "
            f"{dict(load.failures)} {load.failure_messages}",
            f"acknowledged writes: {w.acknowledged}; missing {len(w.missing)}, "
            f"stored under another id {len(w.wrong_id)}, not exactly one event {len(w.not_once)}",
            f"trigger steps: {d.expected_steps} expected, {d.delivered_keys} delivered, "
            f"{d.dead_lettered} dead-lettered, {len(d.lost)} lost, "
            f"{len(d.two_keys)} under two keys, {len(d.unexpected)} unexpected keys, "
            f"{d.same_key_repeats} repeats of the same key (at-least-once); "
            f"{self.pending_steps} still queued after {self.settle_s:.1f} s",
            f"connector limit: {self.measured_rate:.2f} calls/s at the peer for "
            f"rate_per_s = {self.rate_per_s:g} across {STEPS}-step runs on all replicas "
            f"({'within' if self.rate_within_10_percent else 'NOT within'} 10 %)",
            f"PostgreSQL: {self.commits} transactions committed, {self.rollbacks} rolled back "
            f"(an upper bound of the conflicts re-run) in the run's database",
            f"result: {'PASS' if self.ok else 'FAIL'}",
        ]


async def failover_proof(
    cluster: Cluster,
    duration_s: float,
    *,
    callers: int = 12,
    kill_at_s: float | None = None,
    down_s: float = 3.0,
    settle_timeout_s: float = 60.0,
) -> ProofReport:
    """Drive mixed load through nginx, kill -9 one replica midway and restart it, wait for
    the outbox to drain, then check writes, deliveries, errors and the shared rate."""
    nginx = cluster.balance(len(cluster.replicas))
    # Triggers a little faster than the connector limit, so the limit is what paces the
    # peer for the whole run (a backlog forms) yet the backlog drains in a few seconds.
    triggers_per_s = 1.25 * cluster.rate_per_s / STEPS
    load_task = asyncio.create_task(
        drive(nginx.target, duration_s, callers=callers, triggers_per_s=triggers_per_s)
    )
    await asyncio.sleep(duration_s / 2 if kill_at_s is None else kill_at_s)
    victim = cluster.replicas[-1]
    killed_pid = victim.pid
    victim.kill()
    down_at = time.monotonic()
    await asyncio.sleep(down_s)
    await asyncio.to_thread(victim.start)
    down = time.monotonic() - down_at
    load = await load_task
    settle_start = time.monotonic()
    expected = checks.expected_keys(load)
    while time.monotonic() - settle_start < settle_timeout_s:
        done = {d.key for d in cluster.peer.snapshot()} | checks.dead_letter_keys(
            cluster.database_url
        )
        if expected <= done and checks.pending_steps(cluster.database_url) == 0:
            break
        await asyncio.sleep(0.25)
    settle = time.monotonic() - settle_start
    deliveries = cluster.peer.snapshot()
    commits, rollbacks = checks.transaction_counts(cluster.database_url)
    return ProofReport(
        load=load,
        attempts=nginx.attempt_statuses(),
        writes=checks.check_writes(cluster.database_url, load),
        deliveries=checks.check_deliveries(
            load, deliveries, checks.dead_letter_keys(cluster.database_url)
        ),
        pending_steps=checks.pending_steps(cluster.database_url),
        rate_per_s=cluster.rate_per_s,
        measured_rate=checks.delivery_rate(deliveries),
        killed_pid=killed_pid,
        down_s=down,
        settle_s=settle,
        commits=commits,
        rollbacks=rollbacks,
    )


@dataclass
class ThroughputRun:
    """One throughput run: calls per second and the CPU each part spent per call."""

    replicas: int
    calls_per_s: float
    cpu_ms_per_call: dict[str, float]
    cpu_busy: float  # CPU seconds spent by the cluster and driver / (cores x wall time)

    def line(self) -> str:
        """The run as one report line."""
        parts = ", ".join(f"{k} {v:.2f}" for k, v in self.cpu_ms_per_call.items())
        return (
            f"  {self.replicas} replica(s): {self.calls_per_s:.0f} calls/s; CPU ms per call: "
            f"{parts}; machine CPU used by these {100 * self.cpu_busy:.0f} %"
        )


async def throughput(
    cluster: Cluster, replicas: int, duration_s: float, callers: int
) -> ThroughputRun:
    """Upsert-and-read calls per second through nginx in front of the first `replicas`."""
    nginx = cluster.balance(replicas)
    parts = cluster.cpu_parts()
    before = cpu.sample(parts)
    load = await drive(nginx.target, duration_s, callers=callers, triggers_per_s=0)
    used = cpu.spent(before, cpu.sample(parts))
    if load.failures:
        raise RuntimeError(f"calls failed during the throughput run: {dict(load.failures)}")
    per_call = {name: 1000 * seconds / max(1, load.calls) for name, seconds in used.items()}
    cores = os.cpu_count() or 1
    busy = sum(used.values()) / (cores * load.elapsed_s)
    return ThroughputRun(replicas, load.throughput, per_call, busy)
