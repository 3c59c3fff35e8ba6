"""The segments case: CountSegment over real gRPC against a server holding N contacts.

The database is filled directly (contacts and their read-model rows, in one transaction,
after the server's own migrations made the tables): going through ImportContacts and
RecordActivity for 1,000,000 people would take the bench many minutes and measure the
writes, not the count. The distribution is skewed as shops are: most people bought nothing
in 90 days, a few bought often. Then a real `switchboard serve` answers CountSegment for
each expression, and the case reports the p50/p95 latency and the server's CPU per call.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import statistics
import time
from pathlib import Path
from typing import Any

import grpc
import psutil

from bench.targets import BENCH_CONFIG, BENCH_ENV, SERVER_CORES, Target, free_port, serve_argv
from switchboard.server.common.ids import new_id
from switchboard.server.config.sections import DatabaseSettings
from switchboard.server.rules.segment_facts import DAY_US, NEVER
from switchboard.server.store.sqlite.store import prepare_database
from switchboard.v1 import contacts_pb2, segments_pb2, segments_pb2_grpc

CALLS = 30
EXPRESSIONS = {
    "fr_frequent": 'purchases_90d > 5 && country == "FR"',
    "recent_buyers": "purchases_30d >= 1",
    "vip_high_score": 'lead_score >= 80 && "vip" in lists',
    "big_spenders": "amount_365d > 900.0",
    "basket_unindexed": "average_basket > 60.0 && purchases_total >= 2",
    "consent_unindexed": (
        'consent.email_marketing && last_activity > timestamp("2026-01-01T00:00:00Z")'
    ),
    # Free-form attributes: a column per key, built by the first count naming it.
    "attribute_eq": 'attributes.plan == "pro"',
    "attribute_in": 'attributes.tier in ["gold", "silver"]',
    "attribute_has": "has(attributes.tier) && !has(attributes.city)",
    "attribute_order": 'attributes.city >= "M" && attributes.plan != "free"',
    "attribute_mixed": 'attributes.plan == "pro" && purchases_90d >= 1 && country == "FR"',
}
_CITIES = ["Paris", "Lyon", "München", "Zürich", "東京", "São Paulo", "Berlin", "Madrid"]
_COUNTRIES = ["FR"] * 10 + ["DE"] * 10 + ["US"] * 30 + ["GB"] * 10 + ["ES", "IT", "NL", "BR"] * 10


def fill(path: Path, rows: int, seed: int = 7) -> None:
    """`rows` contacts with their read-model rows (see the module docstring)."""
    prepare_database(DatabaseSettings(path=str(path)))
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    now = time.time_ns() // 1000
    batch_c: list[tuple[Any, ...]] = []
    batch_f: list[tuple[Any, ...]] = []
    batch_l: list[tuple[str, str]] = []
    db.execute("BEGIN")
    for i in range(rows):
        cid = new_id("c")
        country = rng.choice(_COUNTRIES)
        lists = ["vip"] if rng.random() < 0.05 else []
        attributes = {"plan": rng.choice(["pro", "free", "trial"])}
        if rng.random() < 0.5:
            attributes["tier"] = rng.choice(["gold", "silver", "bronze"])
        if rng.random() < 0.3:
            attributes["city"] = rng.choice(_CITIES)
        contact = contacts_pb2.Contact(
            id=cid,
            email=f"seg-{i:07d}@example.com",
            country=country,
            lists=lists,
            attributes=attributes,
        )
        batch_c.append((cid, contact.email, now, contact.SerializeToString()))
        # About 40% bought in a year, 2% more than five times in 90 days.
        p365 = int(rng.expovariate(0.25)) if rng.random() < 0.4 else 0
        p90 = min(p365, int(rng.expovariate(0.3)))
        p30 = min(p90, int(rng.expovariate(0.8)))
        amount = round(p365 * rng.uniform(10, 120), 2)
        batch_f.append(
            (
                cid,
                country,
                json.dumps(attributes, sort_keys=True),
                len(attributes),
                int(rng.random() < 0.6),
                len(lists),
                rng.randint(0, 100),
                p30,
                p90,
                p365,
                amount * p30 / max(p365, 1),
                amount * p90 / max(p365, 1),
                amount,
                p365,
                amount,
                amount / p365 if p365 else 0.0,
                now - rng.randint(0, 400) * DAY_US if p365 else 0,
                now,
                NEVER,
            )
        )
        batch_l += [("vip", cid)] * len(lists)
        if len(batch_c) == 20_000 or i == rows - 1:
            db.executemany(
                "INSERT INTO contacts (id, email, updated_us, data) VALUES (?,?,?,?)", batch_c
            )
            db.executemany(
                "INSERT INTO segment_facts (contact_id, country, attributes, attribute_count, "
                "consent_email_marketing, list_count, lead_score, "
                "purchases_30d, purchases_90d, purchases_365d, amount_30d, amount_90d, "
                "amount_365d, purchases_total, amount_total, average_basket, last_activity_us, "
                "created_us, expires_day) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                batch_f,
            )
            db.executemany("INSERT INTO contact_lists (list, contact_id) VALUES (?, ?)", batch_l)
            batch_c, batch_f, batch_l = [], [], []
    db.execute("COMMIT")
    db.execute("ANALYZE")  # what a long-running database has: the planner's statistics
    db.close()


async def _count_latencies(port: int, target: Target) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
        stub = segments_pb2_grpc.SegmentsStub(ch)
        for name, expression in EXPRESSIONS.items():
            await stub.CreateSegment(
                segments_pb2.CreateSegmentRequest(
                    segment=segments_pb2.Segment(name=name.replace("_", "-"), expression=expression)
                )
            )
            request = segments_pb2.CountSegmentRequest(name=name.replace("_", "-"))
            t0 = time.perf_counter()
            # Warms the page cache, and loads the column snapshot on the first call.
            count = (await stub.CountSegment(request)).count
            first_ms = (time.perf_counter() - t0) * 1000
            times: list[float] = []
            cpu0 = _cpu(target)
            for _ in range(CALLS):
                t0 = time.perf_counter()
                await stub.CountSegment(request)
                times.append((time.perf_counter() - t0) * 1000)
            cpu_ms = (_cpu(target) - cpu0) * 1000 / CALLS
            times.sort()
            out[name] = {
                "expression": expression,
                "members": count,
                "first_call_ms": round(first_ms, 1),
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(times[int(len(times) * 0.95) - 1], 2),
                "server_cpu_ms_per_call": round(cpu_ms, 2),
            }
    return out


def _cpu(target: Target) -> float:
    total = 0.0
    for pid in target.pids():
        t = psutil.Process(pid).cpu_times()
        total += t.user + t.system
    return total


def segment_counts(workdir: Path, rows: int) -> dict[str, Any]:
    """Fill a database with `rows` contacts, serve it, and time CountSegment."""
    db = workdir / "segments.db"
    t0 = time.perf_counter()
    fill(db, rows)
    fill_s = time.perf_counter() - t0
    config = workdir / "segments.toml"
    config.write_text(BENCH_CONFIG)
    port = free_port()
    target = Target(
        "segments",
        serve_argv(config, port, workers=1),
        port,
        {"SWITCHBOARD_DATABASE__PATH": str(db), **BENCH_ENV},
        cores=SERVER_CORES,
    )
    try:
        target.wait_listening(timeout_s=120.0)
        rss_before = _rss_mb(target)
        cases = asyncio.run(_count_latencies(port, target))
        rss_after = _rss_mb(target)
    finally:
        target.stop()
    return {
        "contacts": rows,
        "fill_s": round(fill_s, 1),
        "calls": CALLS,
        # The server's resident memory before the first count and after every case: the
        # difference is mostly the column snapshot (with the attribute keys the cases name).
        "server_rss_mb_before": rss_before,
        "server_rss_mb_after": rss_after,
        "cases": cases,
    }


def _rss_mb(target: Target) -> float:
    return round(sum(psutil.Process(p).memory_info().rss for p in target.pids()) / 2**20, 1)


if __name__ == "__main__":  # `python -m bench.segments_case N`: this case alone
    import sys
    import tempfile

    with tempfile.TemporaryDirectory(prefix="switchboard-segments-") as tmp:
        n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
        print(json.dumps(segment_counts(Path(tmp), n), indent=2))
