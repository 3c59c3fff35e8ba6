"""`make bench`: Switchboard against a bare grpc.aio echo server and a REST/JSON equivalent.

Targets are measured in alternation, round after round, in one invocation; each figure is
the median over rounds, and the headline numbers are ratios between targets measured
minutes apart on the same machine, because absolute figures on a shared machine are noise.
Set BENCH_QUICK=1 for a one-minute run.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
import psutil

from bench import h2load
from bench.backfill import backfill_rate
from bench.backfill_history import history_rate
from bench.events_case import stream_rate as events_rate
from bench.rebuild_case import rebuild_rate
from bench.roles_case import roles_rates
from bench.segments_case import segment_counts
from bench.stream_case import NO_SYNC, stream_rate
from bench.sync_case import sync_rate
from bench.targets import BENCH_ENV, PINNED, SERVER_CORES, Target, pin_load, start_all
from switchboard.client import Switchboard
from switchboard.v1 import contacts_pb2

QUICK = os.environ.get("BENCH_QUICK") == "1"
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "1" if QUICK else "3"))
SECONDS = 1.5 if QUICK else 3.0
WARMUP = 0.5 if QUICK else 1.0
LEVELS = (1, 64) if QUICK else (1, 16, 64)
CONTACTS = 1000
IMPORT_ROWS = 20_000 if QUICK else 100_000
STREAM_ITEMS = 6000 if QUICK else 30_000
SYNC_ROWS = int(os.environ.get("BENCH_SYNC_ROWS", "20000" if QUICK else "100000"))
MEMORY_ROWS = int(os.environ.get("BENCH_MEMORY_ROWS", "0" if QUICK else "1000000"))
SEGMENT_ROWS = int(os.environ.get("BENCH_SEGMENT_ROWS", "100000" if QUICK else "1000000"))
RESULTS = Path(__file__).parent / "results.json"
# Comma-separated case-name prefixes (e.g. "grpc/echo,grpc/get_contact"): measure only
# those, skip import and memory. For iterating on one path; ratios need both of their cases.
ONLY = [p for p in os.environ.get("BENCH_ONLY", "").split(",") if p]

# (label, load tool, target, kind)
# Reads before writes within a round: a write drops the cache entries of the contacts it
# touched (and keeps them out for cache.invalidation_hold_s), so a read case measured right
# after UpsertContact rewrote all 1,000 contacts would measure cache refills, not hits.
GRPC_CASES = [
    ("echo", "echo"),
    ("get_contact", "sb1"),
    ("score_lead", "sb1"),
    ("upsert_contact", "sb1"),
    ("trigger_campaign", "sb1"),
]
REST_CASES = ["get_contact", "upsert_contact"]


def server_cpu_s(target: Target) -> float:
    """User + system CPU seconds used so far by the target and its workers."""
    total = 0.0
    for pid in target.pids():
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def wait_idle(targets: dict[str, Target], timeout_s: float = 60.0) -> None:
    """Let background work finish (a trigger case leaves steps for the dispatcher) so it is
    not counted against the next case."""
    procs = [psutil.Process(pid) for t in targets.values() for pid in t.pids()]
    for proc in procs:
        proc.cpu_percent(None)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        time.sleep(0.3)
        if sum(proc.cpu_percent(None) for proc in procs) < 10.0:
            return


def py_load(
    module: str, address: str, kind: str, level: int, target: Target, *extra: str
) -> dict[str, float]:
    """One closed-loop run; adds the server's CPU per call, a figure that noise from other
    processes on the machine barely moves (unlike requests/s)."""
    before = server_cpu_s(target)
    result = _py_load(module, address, kind, level, *extra)
    used = server_cpu_s(target) - before
    result["server_cpu_us_per_call"] = 1e6 * used / max(1.0, result.pop("calls_total"))
    return result


def _py_load(module: str, address: str, kind: str, level: int, *extra: str) -> dict[str, float]:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            module,
            address,
            kind,
            "--concurrency",
            str(level),
            "--seconds",
            str(SECONDS),
            "--warmup",
            str(WARMUP),
            "--contacts",
            str(CONTACTS),
            *extra,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    return dict(json.loads(out))


async def seed(port: int) -> None:
    async with Switchboard(f"127.0.0.1:{port}", timeout=60) as sb:
        rows = [
            {
                "email": f"bench-{i:05d}@example.com",
                "first_name": "Bench",
                "company": "Acme",
                "job_title": "Director",
                "lists": ["newsletter"],
            }
            for i in range(CONTACTS)
        ]
        await sb.contacts.import_([rows[i : i + 500] for i in range(0, CONTACTS, 500)])
        for i in range(CONTACTS):  # warm the contact and lead paths once
            await sb.contacts.get(email=f"bench-{i:05d}@example.com")


async def import_rate(port: int, rows: int) -> float:
    batch = 1000

    def batches() -> Any:
        for start in range(0, rows, batch):
            yield [
                {"email": f"import-{i:07d}@example.com", "first_name": "Imp", "lists": ["imported"]}
                for i in range(start, min(rows, start + batch))
            ]

    async with Switchboard(f"127.0.0.1:{port}", timeout=None) as sb:
        t0 = time.perf_counter()
        summary = await sb.contacts.import_(batches())
        elapsed = time.perf_counter() - t0
    if summary.failed or summary.received != rows:
        raise RuntimeError(f"import went wrong: {summary}")
    return rows / elapsed


def memory_check(workdir: Path, rows: int) -> dict[str, float]:
    """Resident memory of one worker holding `rows` contacts while serving reads."""
    from bench.targets import BENCH_CONFIG, free_port, serve_argv

    config = workdir / "memory.toml"
    config.write_text(BENCH_CONFIG)
    port = free_port()
    target = Target(
        "memory",
        serve_argv(config, port, workers=1),
        port,
        {
            "SWITCHBOARD_DATABASE__PATH": str(workdir / "memory.db"),
            **BENCH_ENV,
        },
        cores=SERVER_CORES,
    )
    try:
        target.wait_listening()
        rate = asyncio.run(import_rate(port, rows))
        reads = py_load(
            "bench.load_grpc",
            f"127.0.0.1:{port}",
            "get_contact",
            64,
            target,
            "--contacts",
            str(rows),
            "--email-format",
            "import-{:07d}@example.com",
        )
        rss = psutil.Process(target.proc.pid).memory_info().rss / 2**20
    finally:
        target.stop()
    return {
        "contacts": rows,
        "rss_mb": round(rss, 1),
        "import_per_s": round(rate),
        "get_contact_rps": round(reads["rps"]),
    }


def h2_measured(target: Target, run: Any) -> dict[str, float]:
    """An h2load run, with the server's CPU per call."""
    before = server_cpu_s(target)
    result: dict[str, float] = run()
    used = server_cpu_s(target) - before
    result["server_cpu_us_per_call"] = 1e6 * used / max(1.0, result["calls"])
    return result


def h2_cases(targets: dict[str, Target]) -> dict[str, Any]:
    get = contacts_pb2.GetContactRequest(email="bench-00001@example.com")
    echo = contacts_pb2.GetContactRequest(id="c_01M847PNZXWYG14T8DV5Y61M89")
    rest_url = f"http://127.0.0.1:{targets['rest'].port}/v1/contacts?email=bench-00001@example.com"
    get_method = "/switchboard.v1.ContactSync/GetContact"
    echo_method = "/switchboard.bench.Echo/GetContact"
    return {
        "h2load/echo": lambda: h2_measured(
            targets["echo"],
            lambda: h2load.run_grpc(targets["echo"].port, echo_method, echo, 64, SECONDS, WARMUP),
        ),
        "h2load/get_contact/workers1": lambda: h2_measured(
            targets["sb1"],
            lambda: h2load.run_grpc(targets["sb1"].port, get_method, get, 64, SECONDS, WARMUP),
        ),
        "h2load/get_contact/workers2": lambda: h2_measured(
            targets["sb2"],
            lambda: h2load.run_grpc(targets["sb2"].port, get_method, get, 64, SECONDS, WARMUP),
        ),
        "h2load/rest_get_contact": lambda: h2_measured(
            targets["rest"], lambda: h2load.run_http1(rest_url, 64, SECONDS, WARMUP)
        ),
    }


def measure(targets: dict[str, Target]) -> dict[str, list[dict[str, float]]]:
    samples: dict[str, list[dict[str, float]]] = {}
    cases: list[tuple[str, Any]] = []
    for level in LEVELS:
        for kind, target in GRPC_CASES:
            address = f"127.0.0.1:{targets[target].port}"
            cases.append(
                (
                    f"grpc/{kind}/{level}",
                    lambda a=address, k=kind, lv=level, t=targets[target]: py_load(
                        "bench.load_grpc", a, k, lv, t
                    ),
                )
            )
        for kind in REST_CASES:
            base = f"http://127.0.0.1:{targets['rest'].port}"
            cases.append(
                (
                    f"rest/{kind}/{level}",
                    lambda b=base, k=kind, lv=level: py_load(
                        "bench.load_http", b, k, lv, targets["rest"]
                    ),
                )
            )
    if h2load.available():
        cases.extend(h2_cases(targets).items())
    else:
        print(
            "h2load not found (Debian package nghttp2-client): skipping server-capacity runs",
            file=sys.stderr,
        )
    if ONLY:
        cases = [(name, run) for name, run in cases if name.startswith(tuple(ONLY))]
    for round_ in range(ROUNDS):
        for name, run in cases:
            samples.setdefault(name, []).append(run())
            wait_idle(targets)
            print(
                f"round {round_ + 1}/{ROUNDS} {name}: {samples[name][-1]['rps']:.0f} req/s",
                file=sys.stderr,
                flush=True,
            )
    return samples


def medians(samples: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {
        name: {key: statistics.median(s[key] for s in runs) for key in runs[0]}
        for name, runs in samples.items()
    }


def ratio(results: dict[str, dict[str, float]], a: str, b: str, key: str = "rps") -> float | None:
    if a in results and b in results and results[b][key]:
        return round(results[a][key] / results[b][key], 3)
    return None


def ratios(r: dict[str, dict[str, float]]) -> dict[str, float | None]:
    return {
        "get_contact_vs_echo": ratio(r, "grpc/get_contact/64", "grpc/echo/64"),
        "get_contact_cpu_vs_echo": ratio(
            r, "grpc/get_contact/64", "grpc/echo/64", "server_cpu_us_per_call"
        ),
        "upsert_contact_cpu_vs_echo": ratio(
            r, "grpc/upsert_contact/64", "grpc/echo/64", "server_cpu_us_per_call"
        ),
        "score_lead_cpu_vs_echo": ratio(
            r, "grpc/score_lead/64", "grpc/echo/64", "server_cpu_us_per_call"
        ),
        "trigger_campaign_cpu_vs_echo": ratio(
            r, "grpc/trigger_campaign/64", "grpc/echo/64", "server_cpu_us_per_call"
        ),
        "get_contact_p99_vs_echo": ratio(r, "grpc/get_contact/64", "grpc/echo/64", "p99_ms"),
        "get_contact_p50_at_1_vs_echo": ratio(r, "grpc/get_contact/1", "grpc/echo/1", "p50_ms"),
        "upsert_contact_vs_echo": ratio(r, "grpc/upsert_contact/64", "grpc/echo/64"),
        "score_lead_vs_echo": ratio(r, "grpc/score_lead/64", "grpc/echo/64"),
        "trigger_campaign_vs_echo": ratio(r, "grpc/trigger_campaign/64", "grpc/echo/64"),
        "get_contact_vs_rest": ratio(r, "grpc/get_contact/64", "rest/get_contact/64"),
        "upsert_contact_vs_rest": ratio(r, "grpc/upsert_contact/64", "rest/upsert_contact/64"),
        "h2load_get_contact_vs_echo": ratio(r, "h2load/get_contact/workers1", "h2load/echo"),
        "h2load_get_contact_vs_rest": ratio(
            r, "h2load/get_contact/workers1", "h2load/rest_get_contact"
        ),
        "workers2_vs_workers1": ratio(
            r, "h2load/get_contact/workers2", "h2load/get_contact/workers1"
        ),
    }


def print_table(results: dict[str, dict[str, float]], rates: dict[str, float | None]) -> None:
    header = f"{'case':34} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
    print(f"{header} {'server CPU us/call':>19}")
    for name, m in results.items():
        cols = [
            f"{m.get(k, float('nan')):8.2f}" if k in m else f"{'-':>8}"
            for k in ("p50_ms", "p90_ms", "p99_ms")
        ]
        cpu = m.get("server_cpu_us_per_call")
        cols.append(f"{cpu:19.0f}" if cpu is not None else f"{'-':>19}")
        print(f"{name:34} {m['rps']:9.0f} {' '.join(cols)}")
    print()
    for name, value in rates.items():
        print(f"{name:34} {value if value is not None else '-'}")


def main() -> None:
    started = time.monotonic()
    pin_load()
    with tempfile.TemporaryDirectory(prefix="switchboard-bench-") as tmp:
        targets = start_all(Path(tmp))
        try:
            asyncio.run(seed(targets["sb1"].port))
            asyncio.run(seed(targets["sb2"].port))
            results = medians(measure(targets))
            import_per_s = (
                0.0 if ONLY else asyncio.run(import_rate(targets["sb1"].port, IMPORT_ROWS))
            )
            rss_mb = sum(psutil.Process(p).memory_info().rss for p in targets["sb1"].pids()) / 2**20
        finally:
            for target in targets.values():
                target.stop()
        memory = memory_check(Path(tmp), MEMORY_ROWS) if MEMORY_ROWS and not ONLY else None
        sync = sync_rate(Path(tmp), SYNC_ROWS) if SYNC_ROWS and not ONLY else None
        roles = None if ONLY else roles_rates(Path(tmp), SECONDS * 2, ROUNDS)
        stream = None if ONLY else stream_rate(Path(tmp), STREAM_ITEMS, ROUNDS, NO_SYNC)
        events = events_rate(Path(tmp), IMPORT_ROWS // 2) if not ONLY else None
        backfill = backfill_rate(Path(tmp), SYNC_ROWS) if SYNC_ROWS and not ONLY else None
        history = history_rate(Path(tmp), SYNC_ROWS) if backfill else None
        segments = segment_counts(Path(tmp), SEGMENT_ROWS) if SEGMENT_ROWS and not ONLY else None
        rebuild = None if ONLY else rebuild_rate(Path(tmp), IMPORT_ROWS // 2)
    rates = ratios(results)
    if stream and "rest/upsert_contact/64" in results:  # the REST app writes without sync too
        rest_us = results["rest/upsert_contact/64"]["server_cpu_us_per_call"]
        stream["vs_rest_upsert_per_core"] = round(
            rest_us / stream["stream_server_cpu_us_per_item"], 2
        )
    report = {
        "memory": memory,
        "sync": sync,
        "roles": roles,
        "stream": stream,
        "events": events,
        "backfill": backfill,
        "backfill_history": history,
        "segments": segments,
        "rebuild": rebuild,
        "quick": QUICK,
        "rounds": ROUNDS,
        "seconds_per_case": SECONDS,
        "results": results,
        "ratios": rates,
        "import_contacts_per_s": round(import_per_s),
        "import_rows": IMPORT_ROWS,
        "sb1_rss_mb_after_import": round(rss_mb, 1),
        "grpcio": grpc.__version__,
        "python": platform.python_version(),
        "cores": os.cpu_count(),
        "pinned": PINNED,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    if not ONLY:  # a partial run never overwrites the full report
        RESULTS.write_text(json.dumps(report, indent=2))
    print_table(results, rates)
    print(f"{'import_contacts_per_s':34} {report['import_contacts_per_s']}")
    if memory:
        print(f"{'memory':34} {memory}")
    if sync:
        print(f"{'sync':34} {sync}")
    if roles:
        print(f"{'roles (all vs split)':34} {roles}")
    if stream:  # UpsertContacts against unary UpsertContact (bench/stream_case.py)
        print(f"{'stream':34} {stream}")
    if events:
        print(f"{'events':34} {events}")
    if backfill:
        print(f"{'backfill':34} {backfill}")
        print(f"{'backfill --history':34} {history}")
    if segments:
        print(f"{'segments':34} {segments}")
    written = f"wrote {RESULTS}" if not ONLY else "partial run (BENCH_ONLY): results.json untouched"
    print(f"\n{written} ({report['elapsed_s']} s)")


if __name__ == "__main__":
    if os.environ.get("BENCH_SOAK") == "1":  # the soak case alone (bench/soak.py)
        from bench.soak import main as soak_main

        soak_main()
    else:
        main()
