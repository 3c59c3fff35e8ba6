"""`BENCH_SOAK=1 make bench`: a steady open-loop mixed load against `serve` with 2 workers.

The mix is the one of issue #16 (`MIX`), at `BENCH_SOAK_RATE` calls/s (300) for
`BENCH_SOAK_S` seconds (600; 1800 for the memory figure). The load generator
(`bench.soak_load`) runs in its own process and reports every `BENCH_SOAK_WINDOW_S` (15 s);
at each report this process samples the server: resident memory and CPU per process,
database and WAL size, outbox depth, runs not final, the workers' event-loop lag (from their
`event loop lag` log lines). After the load, it waits for the outbox to drain and counts
the runs still not final. The report goes to bench/results.json under "soak".

The tail drifts as the database grows; to measure that without waiting for it,
`BENCH_SOAK_KEEP_DB=<file>` keeps a run's database, and `BENCH_SOAK_DB_FROM=<file>` starts a
run from a copy of one (the seeding then updates contacts that already exist).

`BENCH_SOAK_STORE=postgres` runs the same soak against the PostgreSQL store, on a durable
server of its own on loopback (bench/soak_postgres.py): the report then also carries the
server's CPU and its committed and rolled-back transactions.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.soak_postgres import SoakDatabase

#: (method, share of calls), in the proportions of the issue's run.
MIX: tuple[tuple[str, float], ...] = (
    ("GetContact", 0.40),
    ("UpsertContact", 0.20),
    ("TriggerCampaign", 0.15),
    ("ScoreLead", 0.05),
    ("RecordActivity", 0.05),
    ("ListContacts", 0.05),
    ("ImportContacts", 0.05),
    ("ListRuns", 0.05),
)
WRITES = ("UpsertContact", "TriggerCampaign", "ScoreLead", "RecordActivity")
RUN_NOT_FINAL = (1, 2)  # RUN_STATUS_PENDING, RUN_STATUS_RUNNING
RESULTS = Path(__file__).parent / "results.json"
LOOP_LAG_MODULE = "server/switchboard/server/observability/loop_lag.py"
WRITER_STATS_MODULE = "server/switchboard/server/store/sqlite/writer_stats.py"


def pick(mix: tuple[tuple[str, float], ...], u: float) -> str:
    """The method whose cumulative share first exceeds `u` (0 <= u < 1)."""
    total = 0.0
    for method, share in mix:
        total += share
        if u < total:
            return method
    return mix[-1][0]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (`p` in 0..100) of `values`; 0.0 when empty."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100), at least 1
    return ordered[int(rank) - 1]


def window_summary(
    index: int,
    latencies: dict[str, list[float]],
    errors: dict[str, int],
    lags: list[float],
    in_flight: int,
) -> dict[str, Any]:
    """One window's figures (milliseconds): per method calls, p50, p99; all calls' p99."""
    every = [x for values in latencies.values() for x in values]
    return {
        "window": index,
        "methods": {
            m: {
                "calls": len(v),
                "p50_ms": round(percentile(v, 50) * 1e3, 2),
                "p99_ms": round(percentile(v, 99) * 1e3, 2),
            }
            for m, v in sorted(latencies.items())
        },
        "errors": dict(errors),
        "p99_ms": round(percentile(every, 99) * 1e3, 2),
        "gen_lag_p99_ms": round(percentile(lags, 99) * 1e3, 2),
        "gen_lag_max_ms": round(max(lags, default=0.0) * 1e3, 2),
        "in_flight": in_flight,
    }


def errors_by_kind(windows: list[dict[str, Any]]) -> dict[str, int]:
    """The run's failed calls by "method STATUS" (the windows' `errors` keys)."""
    kinds: dict[str, int] = {}
    for w in windows:
        for kind, count in w["errors"].items():
            kinds[kind] = kinds.get(kind, 0) + count
    return dict(sorted(kinds.items()))


def window_medians(windows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per method, the median over windows (the first left out: it holds start-up) of each
    window's p50 and p99 (ms): the typical window. One stalled window (a slow disk flush)
    moves a short run's own p99 by more than the change under test; A/B runs of two
    minutes are compared on these. The targets still read the run's own percentiles."""
    figures: dict[str, dict[str, list[float]]] = {}
    for w in windows[1:]:
        for method, m in w["methods"].items():
            slot = figures.setdefault(method, {"p50_ms": [], "p99_ms": []})
            slot["p50_ms"].append(m["p50_ms"])
            slot["p99_ms"].append(m["p99_ms"])
    return {
        method: {key: round(statistics.median(v), 2) for key, v in slot.items()}
        for method, slot in sorted(figures.items())
    }


def flatness(samples: list[tuple[float, float]], tail: float = 2 / 3) -> dict[str, float]:
    """Spread (max - min) and least-squares slope (per minute) over the last `tail` of a
    series of (seconds, value)."""
    if not samples:
        return {"spread": 0.0, "slope_per_min": 0.0}
    end = samples[-1][0]
    start = samples[0][0]
    kept = [s for s in samples if s[0] >= end - tail * (end - start)]
    values = [v for _, v in kept]
    n = len(kept)
    mean_t = sum(t for t, _ in kept) / n
    mean_v = sum(values) / n
    var = sum((t - mean_t) ** 2 for t, _ in kept)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in kept)
    slope = cov / var * 60 if var else 0.0
    return {"spread": round(max(values) - min(values), 2), "slope_per_min": round(slope, 3)}


def run_summary(latencies: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    """Whole-run calls, p50 and p99 (ms) per method, and `all` for every call."""
    out = {
        m: {
            "calls": len(v),
            "p50_ms": round(percentile(v, 50) * 1e3, 2),
            "p99_ms": round(percentile(v, 99) * 1e3, 2),
        }
        for m, v in sorted(latencies.items())
    }
    every = [x for v in latencies.values() for x in v]
    out["all"] = {
        "calls": len(every),
        "p50_ms": round(percentile(every, 50) * 1e3, 2),
        "p99_ms": round(percentile(every, 99) * 1e3, 2),
    }
    return out


def verdict(report: dict[str, Any]) -> dict[str, bool]:
    """The issue's targets, each true or false."""
    methods = report["methods"]
    writes = [methods[m] for m in WRITES if m in methods]
    run_p99 = methods["all"]["p99_ms"]
    windows = report["windows"][1:]  # the first window includes start-up
    return {
        "write_p99_le_5x_p50": all(w["p99_ms"] <= 5 * w["p50_ms"] for w in writes),
        "write_p99_le_50ms": all(w["p99_ms"] <= 50 for w in writes),
        "import_p99_le_250ms": methods.get("ImportContacts", {"p99_ms": 0})["p99_ms"] <= 250,
        "no_window_p99_above_2x_run": all(w["p99_ms"] <= 2 * run_p99 for w in windows),
        "zero_errors": report["errors"] == 0,
        "every_run_final": report["runs_not_final_after_drain"] == 0,
        "worker_rss_flat_10mb": all(w["rss_mb_spread"] <= 10 for w in report["workers"]),
    }


# -- the run itself (needs the servers) --------------------------------------------------------


def _read_only(db: Path) -> sqlite3.Connection:
    """A connection that reads the servers' database beside them, never writing to it."""
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0)


def _db_figures(db: Path) -> dict[str, Any]:
    wal = Path(f"{db}-wal")
    figures: dict[str, Any] = {
        "db_mb": round(db.stat().st_size / 2**20, 2) if db.exists() else 0.0,
        "wal_mb": round(wal.stat().st_size / 2**20, 2) if wal.exists() else 0.0,
    }
    conn = _read_only(db)
    try:
        figures["outbox"] = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        figures["runs_not_final"] = conn.execute(
            "SELECT count(*) FROM runs WHERE status IN (?, ?)", RUN_NOT_FINAL
        ).fetchone()[0]
    finally:
        conn.close()
    return figures


def _copy_db(source: Path, target: Path) -> None:
    """Copy a database that no process has open, with its WAL if the last close left one."""
    shutil.copyfile(source, target)
    if (wal := Path(f"{source}-wal")).exists():
        shutil.copyfile(wal, f"{target}-wal")


class _SqliteFile:
    """The SQLite store's figures, read beside the servers from its file (what
    `bench.soak_postgres.SoakDatabase` gives for the PostgreSQL store)."""

    def __init__(self, db: Path) -> None:
        self._db = db

    def figures(self) -> dict[str, Any]:
        return _db_figures(self._db)

    def tables(self) -> dict[str, float]:
        return _db_tables(self._db)


def _db_tables(db: Path, top: int = 15) -> dict[str, float]:
    """The largest tables and indexes (MB) at the end of the run: what the database grows by."""
    conn = _read_only(db)
    try:
        rows = conn.execute(
            "SELECT name, sum(pgsize) AS size FROM dbstat GROUP BY name ORDER BY size DESC LIMIT ?",
            (top,),
        ).fetchall()
    except sqlite3.OperationalError:  # an SQLite built without the dbstat table
        return {}
    finally:
        conn.close()
    return {name: round(size / 2**20, 1) for name, size in rows}


def _server_lines(log: Path, seen: int) -> tuple[int, float, int, list[dict[str, Any]]]:
    """Lines read so far; since `seen`: the worst loop lag (ms) reported, how many lag lines,
    and the workers' `store writer stats` lines (see store/sqlite/writer_stats.py)."""
    worst, count, lines = 0.0, 0, 0
    stats: list[dict[str, Any]] = []
    with log.open(encoding="utf-8", errors="replace") as f:
        for lines, line in enumerate(f, start=1):
            if lines <= seen:
                continue
            if "store writer stats" in line or "heap growth" in line:
                with contextlib.suppress(ValueError):
                    stats.append(json.loads(line))
            if "event loop lag" not in line:
                continue
            try:
                worst = max(worst, float(json.loads(line).get("lag_ms", 0.0)))
                count += 1
            except ValueError:
                continue
    return lines, worst, count, stats


def writer_components(lines: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Merge workers' writer stats lines: per kind and component, jobs, the job-weighted mean
    of the lines' p50 (an approximation) and the worst p99 and max (ms)."""
    merged: dict[str, dict[str, dict[str, float]]] = {}
    for line in lines:
        for kind, components in line.get("writer", {}).items():
            for name, h in components.items():
                m = merged.setdefault(kind, {}).setdefault(
                    name, {"n": 0, "p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}
                )
                m["p50_ms"] += h["p50_ms"] * h["n"]
                m["n"] += h["n"]
                m["p99_ms"] = max(m["p99_ms"], h["p99_ms"])
                m["max_ms"] = max(m["max_ms"], h["max_ms"])
    for components in merged.values():
        for m in components.values():
            m["p50_ms"] = round(m["p50_ms"] / m["n"], 2) if m["n"] else 0.0
    return merged


async def _seed(port: int, contacts: int) -> None:
    from switchboard.client import Switchboard

    rows = [
        {"email": f"bench-{i:05d}@example.com", "first_name": "Soak", "lists": ["newsletter"]}
        for i in range(contacts)
    ]
    async with Switchboard(f"127.0.0.1:{port}", timeout=120) as sb:
        await sb.contacts.import_([rows[i : i + 1000] for i in range(0, contacts, 1000)])


def soak(workdir: Path, seconds: float, rate: float, window_s: float) -> dict[str, Any]:
    """One soak against a fresh 2-worker server; see the module docstring."""
    postgres = None
    if os.environ.get("BENCH_SOAK_STORE", "sqlite") == "postgres":
        if os.environ.get("BENCH_SOAK_DB_FROM") or os.environ.get("BENCH_SOAK_KEEP_DB"):
            raise SystemExit("BENCH_SOAK_DB_FROM and BENCH_SOAK_KEEP_DB are for the SQLite store")
        from bench.soak_postgres import SoakDatabase

        postgres = SoakDatabase()
    try:
        return _soak(workdir, seconds, rate, window_s, postgres)
    finally:
        if postgres is not None:
            postgres.stop()


def _soak(
    workdir: Path, seconds: float, rate: float, window_s: float, postgres: SoakDatabase | None
) -> dict[str, Any]:
    import asyncio

    import psutil

    from bench.targets import BENCH_CONFIG, BENCH_ENV, Target, free_port, serve_argv

    config = workdir / "soak.toml"
    config.write_text(BENCH_CONFIG)
    db = workdir / "soak.db"
    log = workdir / "soak-server.log"
    store: SoakDatabase | _SqliteFile = postgres if postgres is not None else _SqliteFile(db)
    if grown := os.environ.get("BENCH_SOAK_DB_FROM"):
        _copy_db(Path(grown), db)
    port = free_port()
    env = {
        **BENCH_ENV,
        "SWITCHBOARD_DATABASE__PATH": str(db),
        # The limiter stays on the path, raised above the soak's rate from one caller.
        "SWITCHBOARD_LIMITS__RATE_PER_S": str(rate * 4),
        "SWITCHBOARD_LIMITS__RATE_BURST": str(int(rate * 4)),
        "SWITCHBOARD_LOG_LEVEL": "WARNING",
        # Every loop lag of 10 ms or more becomes a log line the windows report.
        "SWITCHBOARD_TELEMETRY__LOOP_LAG_WARN_MS": "10",
        # Where writes wait: each worker logs its writer's components every 5 s.
        "SWITCHBOARD_DATABASE__WRITER_STATS_S": "5",
    }
    if postgres is not None:
        env["SWITCHBOARD_DATABASE__URL"] = postgres.url
    # A/B against another checkout's server code: BENCH_SOAK_SERVER_PATH=<checkout>.
    if base := os.environ.get("BENCH_SOAK_SERVER_PATH"):
        env["PYTHONPATH"] = f"{base}/server:{base}/client"
        if not Path(base, LOOP_LAG_MODULE).exists():  # older code: no such setting
            del env["SWITCHBOARD_TELEMETRY__LOOP_LAG_WARN_MS"]
        if not Path(base, WRITER_STATS_MODULE).exists():
            del env["SWITCHBOARD_DATABASE__WRITER_STATS_S"]
    # Layout: BENCH_SOAK_WORKERS processes, BENCH_SOAK_DISPATCHERS of them delivery-only.
    workers = int(os.environ.get("BENCH_SOAK_WORKERS", "2"))
    env["SWITCHBOARD_DISPATCH__PROCESSES"] = os.environ.get("BENCH_SOAK_DISPATCHERS", "0")
    # A leak hunt (slows the workers): tracemalloc growth lines every BENCH_SOAK_HEAP_S.
    env["SWITCHBOARD_TELEMETRY__HEAP_GROWTH_S"] = os.environ.get("BENCH_SOAK_HEAP_S", "0")
    # BENCH_SOAK_BALANCE=round_robin: the layout docs/scaling.md advises for callers you
    # control (a port per worker, clients balancing calls over them), instead of the
    # kernel's hash of 8 connections onto the shared port.
    target = f"127.0.0.1:{port}"
    if os.environ.get("BENCH_SOAK_BALANCE") == "round_robin":
        first = free_port()  # and the next ones, free almost always
        env["SWITCHBOARD_WORKER_LISTEN"] = f"127.0.0.1:{first}"
        target = "ipv4:" + ",".join(f"127.0.0.1:{first + i}" for i in range(workers))
    server = Target("soak", serve_argv(config, port, workers), port, env, cores=None, log=log)
    contacts = int(os.environ.get("BENCH_SOAK_CONTACTS", "5000"))
    load_env = dict(os.environ)
    gen: subprocess.Popen[str] | None = None
    try:
        server.wait_listening()
        asyncio.run(_seed(port, contacts))
        time.sleep(1.0)
        procs = {pid: psutil.Process(pid) for pid in server.pids()}
        root = server.proc.pid
        cpu0 = {pid: sum(p.cpu_times()[:2]) for pid, p in procs.items()}
        db_cpu0 = postgres.cpu_s() if postgres is not None else 0.0
        db_xacts0 = postgres.conflicts() if postgres is not None else {}
        gen = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.soak_load",
                target,
                f"--rate={rate}",
                f"--seconds={seconds}",
                f"--window={window_s}",
                f"--contacts={contacts}",
            ],
            stdout=subprocess.PIPE,
            text=True,
            env=load_env,
            preexec_fn=_load_process_setup,
        )
        gen_ps = psutil.Process(gen.pid)
        windows: list[dict[str, Any]] = []
        final: dict[str, Any] = {}
        t0 = time.monotonic()
        seen = 0
        every_stats: list[dict[str, Any]] = []
        assert gen.stdout is not None
        for line in gen.stdout:
            item = json.loads(line)
            if item.get("final"):
                final = item
                continue
            seen, lag_ms, lag_lines, stats = _server_lines(log, seen)
            disks = psutil.disk_io_counters()
            every_stats.extend(stats)
            item.update(
                t_s=round(time.monotonic() - t0, 1),
                rss_mb={
                    ("supervisor" if pid == root else str(pid)): round(
                        p.memory_info().rss / 2**20, 1
                    )
                    for pid, p in procs.items()
                },
                server_loop_lag_max_ms=lag_ms,
                server_loop_lag_reports=lag_lines,
                writer=writer_components(stats),
                # What the server processes wrote so far (pages they dirtied, counted again
                # each time a page written back is dirtied again), and what the disks took.
                disk_write_mb=round(
                    sum(p.io_counters().write_bytes for p in procs.values()) / 2**20, 1
                ),
                device_write_mb=round(disks.write_bytes / 2**20, 1),
                device_writes=disks.write_count,
                gen_cpu_s=round(sum(gen_ps.cpu_times()[:2]), 1),
                load1=round(os.getloadavg()[0], 2),
                **store.figures(),
            )
            windows.append(item)
            print(_window_line(item), file=sys.stderr, flush=True)
        gen.wait()
        cpu = {pid: round(sum(p.cpu_times()[:2]) - cpu0[pid], 1) for pid, p in procs.items()}
        database: dict[str, Any] = {"store": "postgres" if postgres is not None else "sqlite"}
        if postgres is not None:  # the load's share, before the drain
            database["postgres_cpu_s"] = round(postgres.cpu_s() - db_cpu0, 1)
            xacts = postgres.conflicts()
            database.update({k: v - db_xacts0[k] for k, v in xacts.items()})
        drained_at = time.monotonic()
        while (after := store.figures())["runs_not_final"] or after["outbox"]:
            if time.monotonic() - drained_at > 120:
                break
            time.sleep(1.0)
        drain_s = round(time.monotonic() - drained_at, 1)
    finally:
        # An interrupted soak (Ctrl-C, a failed sample) stops the load it started too, by id:
        # the generator otherwise sends calls to a stopped port until its own end.
        if gen is not None and gen.poll() is None:
            gen.terminate()
            try:
                gen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                gen.kill()
                gen.wait()
        server.stop()
    if keep := os.environ.get("BENCH_SOAK_KEEP_DB"):
        _copy_db(db, Path(keep))
    report = _report(windows, final, after, drain_s, cpu, root, seconds, rate, window_s)
    report["database"] = database
    report["db_tables_mb"] = store.tables()
    report["writer"] = writer_components(every_stats)
    heap = {str(s["pid"]): s for s in every_stats if "growth" in s}  # the last line per worker
    report["heap_growth"] = {
        pid: {"traced_mb": s["traced_mb"], "top": s["growth"]} for pid, s in heap.items()
    }
    return report


def _load_process_setup() -> None:
    """Pin the generator to the load core and, where allowed, run it ahead of the servers
    (a lagging generator would add its own delay to every latency)."""
    from bench.targets import LOAD_CORES, PINNED

    if PINNED:
        os.sched_setaffinity(0, LOAD_CORES)
    with contextlib.suppress(PermissionError):
        os.nice(-5)


def _window_line(w: dict[str, Any]) -> str:
    m = w["methods"]
    parts = [f"{k[:6]} {v['p50_ms']:.1f}/{v['p99_ms']:.0f}" for k, v in m.items()]
    return (
        f"[{w['t_s']:7.1f}s] p99 {w['p99_ms']:.0f} ms, err {sum(w['errors'].values())}, "
        f"rss {w['rss_mb']}, wal {w['wal_mb']} MB, db {w['db_mb']} MB, disk written "
        f"{w['disk_write_mb']} MB (device {w.get('device_write_mb')} MB), outbox {w['outbox']}, "
        f"srv lag {w['server_loop_lag_max_ms']:.0f} ms, gen lag {w['gen_lag_max_ms']:.0f} ms, "
        f"load {w['load1']} | " + ", ".join(parts) + _writer_line(w.get("writer", {}))
    )


def _writer_line(writer: dict[str, Any]) -> str:
    """` | writer call queue 1.0/20 lock ...`: each component's p50/p99 (ms)."""
    parts = []
    for kind, components in writer.items():
        spans = " ".join(
            f"{name} {h['p50_ms']:.1f}/{h['p99_ms']:.0f}" for name, h in components.items()
        )
        parts.append(f"{kind} {spans}")
    return " | writer " + "; ".join(parts) if parts else ""


def _report(
    windows: list[dict[str, Any]],
    final: dict[str, Any],
    after: dict[str, Any],
    drain_s: float,
    cpu: dict[int, float],
    root: int,
    seconds: float,
    rate: float,
    window_s: float,
) -> dict[str, Any]:
    latencies: dict[str, list[float]] = final.get("latencies_s", {})
    workers = []
    for pid in (str(p) for p in cpu if p != root):
        series = [(w["t_s"], w["rss_mb"][pid]) for w in windows if pid in w["rss_mb"]]
        fit = flatness(series)
        workers.append(
            {
                "rss_mb_first": series[0][1] if series else 0.0,
                "rss_mb_last": series[-1][1] if series else 0.0,
                # over the last 2/3 of the run
                "rss_mb_spread": fit["spread"],
                "rss_mb_per_min": fit["slope_per_min"],
                "cpu_s": cpu[int(pid)],
            }
        )
    report: dict[str, Any] = {
        "seconds": seconds,
        "rate": rate,
        "window_s": window_s,
        "scheduled": final.get("scheduled", 0),
        "methods": run_summary(latencies),
        "errors": sum(sum(w["errors"].values()) for w in windows),
        "errors_by_kind": errors_by_kind(windows),
        "workers": workers,
        "supervisor_cpu_s": cpu.get(root, 0.0),
        "runs_not_final_after_drain": after["runs_not_final"],
        "outbox_after_drain": after["outbox"],
        "drain_s": drain_s,
        "gen_lag_max_ms": max((w["gen_lag_max_ms"] for w in windows), default=0.0),
        "server_loop_lag_max_ms": max((w["server_loop_lag_max_ms"] for w in windows), default=0.0),
        "window_p99_max_ms": max((w["p99_ms"] for w in windows[1:]), default=0.0),
        "window_medians": window_medians(windows),
        "uptime_load": os.getloadavg(),
        "windows": windows,
    }
    report["targets"] = verdict(report)
    return report


def main() -> None:
    seconds = float(os.environ.get("BENCH_SOAK_S", "600"))
    rate = float(os.environ.get("BENCH_SOAK_RATE", "300"))
    window_s = float(os.environ.get("BENCH_SOAK_WINDOW_S", "15"))
    with tempfile.TemporaryDirectory(prefix="switchboard-soak-") as tmp:
        report = soak(Path(tmp), seconds, rate, window_s)
    out = os.environ.get("BENCH_SOAK_OUT")
    if out:  # a trial run keeps its figures apart from the committed report
        Path(out).write_text(json.dumps(report, indent=2))
    else:
        existing = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        existing["soak"] = report
        RESULTS.write_text(json.dumps(existing, indent=2))
    typical = report["window_medians"]
    print(f"\n{'method':16} {'calls':>7} {'p50 ms':>8} {'p99 ms':>8}   median window p50 / p99")
    for name, m in report["methods"].items():
        t = typical.get(name)
        median = f"{t['p50_ms']:8.2f} / {t['p99_ms']:.2f}" if t else ""
        print(f"{name:16} {m['calls']:7} {m['p50_ms']:8.2f} {m['p99_ms']:8.2f}   {median}")
    keys = (
        "errors",
        "runs_not_final_after_drain",
        "drain_s",
        "window_p99_max_ms",
        "gen_lag_max_ms",
        "server_loop_lag_max_ms",
        "workers",
        "writer",
        "database",
        "db_tables_mb",
    )
    for key in keys:
        print(f"{key}: {report[key]}")
    for key in ("targets",):
        print(f"{key}: {report[key]}")
