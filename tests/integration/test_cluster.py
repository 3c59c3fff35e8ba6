"""The scale-out proof, shortened: PostgreSQL, Redis, three replicas behind nginx, a replica
killed with SIGKILL under mixed load and started again (bench/cluster, `make cluster-demo`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.cluster import checks
from bench.cluster.cluster import Cluster, failover_proof, missing_parts

pytestmark = pytest.mark.slow  # PostgreSQL, redis-server, nginx and three server processes

RATE = 20.0


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    why = missing_parts()  # installs the Debian packages when root, as CI runs
    if why:
        pytest.skip(why)
    started = Cluster(replicas=3, rate_per_s=RATE)
    yield started
    started.close()


@pytest.mark.timeout(150)
async def test_a_replica_killed_under_load_loses_nothing_and_limits_hold(
    cluster: Cluster,
) -> None:
    report = await failover_proof(cluster, 10.0, callers=8, kill_at_s=3.0, down_s=2.0)
    print("\n".join(report.lines()))
    if not report.ok:
        print("replica warnings and errors:", *cluster.log_problems(), sep="\n")

    load, writes, deliveries = report.load, report.writes, report.deliveries
    assert len(load.upserts) > 100
    assert len(load.runs) > 50
    # Callers: nothing failed once the client had retried; nginx saw only UNAVAILABLE.
    assert not load.failures
    assert checks.caller_errors_ok(report.attempts), report.attempts
    # Every acknowledged write is stored under the acknowledged id, with one event.
    assert writes.acknowledged == len(load.upserts)
    assert (writes.missing, writes.wrong_id, writes.not_once) == ([], [], {})
    # Every accepted run's steps arrived or were dead-lettered, each under its one key.
    assert deliveries.expected_steps == 2 * len(load.runs)
    assert deliveries.lost == []
    assert deliveries.two_keys == []
    assert deliveries.unexpected == []
    assert deliveries.delivered_keys + deliveries.dead_lettered >= deliveries.expected_steps
    assert report.pending_steps == 0
    # The connector's limit, shared through Redis, held across the three replicas.
    assert 0.9 * RATE <= report.measured_rate <= 1.1 * RATE
