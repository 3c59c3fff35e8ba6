"""`make cluster-demo`: the failover proof, then throughput for 1, 2 and 3 replicas.

Environment: CLUSTER_SECONDS (load of the proof, default 30), CLUSTER_RATE (the webhook
connector's `rate_per_s`, default 20), CLUSTER_SCALE_SECONDS (each throughput run, 8).
"""

from __future__ import annotations

import asyncio
import os
import sys

from bench.cluster.cluster import Cluster, failover_proof, missing_parts, throughput


async def _main() -> int:
    why = missing_parts()
    if why:
        print(f"cluster-demo: cannot run: {why}", file=sys.stderr)
        return 2
    seconds = float(os.environ.get("CLUSTER_SECONDS", "30"))
    rate = float(os.environ.get("CLUSTER_RATE", "20"))
    scale_seconds = float(os.environ.get("CLUSTER_SCALE_SECONDS", "8"))
    callers = 16
    cluster = await asyncio.to_thread(Cluster, 3, rate)
    report = None
    try:
        print(f"cluster: PostgreSQL, redis-server, 3 replicas, nginx (work dir {cluster.workdir})")
        report = await failover_proof(cluster, seconds, callers=callers)
        for line in report.lines():
            print(line)
        print(f"throughput, {callers} concurrent callers, upsert then read, {scale_seconds:g} s:")
        for count in (1, 2, 3):
            run = await throughput(cluster, count, scale_seconds, callers)
            print(run.line())
    finally:
        failed = report is None or not report.ok
        await asyncio.to_thread(cluster.close, failed)
        if failed:
            print(f"replica logs kept in {cluster.workdir}", file=sys.stderr)
    return 0 if report is not None and report.ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(_main()))
