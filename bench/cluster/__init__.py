"""A Switchboard cluster on one machine: PostgreSQL, Redis, replicas and nginx on loopback.

`python -m bench.cluster` (`make cluster-demo`) runs the failover proof and the 1/2/3-replica
throughput runs; `tests/integration/test_cluster.py` runs a shorter proof with the same checks.
"""
