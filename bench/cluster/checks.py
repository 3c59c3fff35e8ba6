"""The checks of the failover proof, read back from PostgreSQL and from the peer's record."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import psycopg

from bench.cluster.load import LoadResult
from bench.cluster.peer import Delivery
from bench.cluster.replicas import STEPS


@dataclass
class WriteCheck:
    """Acknowledged upserts against what the database holds."""

    acknowledged: int
    missing: list[str] = field(default_factory=list)  # acked keys with no such contact
    wrong_id: list[str] = field(default_factory=list)  # stored under another id than acked
    not_once: dict[str, int] = field(default_factory=dict)  # contact id -> events != 1

    @property
    def ok(self) -> bool:
        """Every acknowledged write present, with one event each."""
        return not (self.missing or self.wrong_id or self.not_once)


@dataclass
class DeliveryCheck:
    """Accepted triggers' steps against what the peer received."""

    expected_steps: int
    delivered_keys: int
    dead_lettered: int
    lost: list[str] = field(default_factory=list)  # neither delivered nor dead-lettered
    unexpected: list[str] = field(default_factory=list)  # keys of no accepted run
    two_keys: list[str] = field(default_factory=list)  # one trigger step, several keys
    same_key_repeats: int = 0  # at-least-once re-deliveries of one key

    @property
    def ok(self) -> bool:
        """None lost, none under two keys, nothing nobody asked for."""
        return not (self.lost or self.unexpected or self.two_keys)


def check_writes(database_url: str, result: LoadResult) -> WriteCheck:
    """Each acknowledged upsert's contact is stored under the acked id with one event."""
    check = WriteCheck(acknowledged=len(result.upserts))
    emails = [email for email, _ in result.upserts.values()]
    with psycopg.connect(database_url) as conn:
        stored: dict[str, str] = dict(
            conn.execute("SELECT email, id FROM contacts WHERE email = ANY(%s)", (emails,))
        )
        ids = list(stored.values())
        events: dict[str, int] = dict(
            conn.execute(
                "SELECT aggregate_id, count(*) FROM events WHERE aggregate_id = ANY(%s)"
                " GROUP BY aggregate_id",
                (ids,),
            )
        )
    for key, (email, contact_id) in result.upserts.items():
        if email not in stored:
            check.missing.append(key)
        elif stored[email] != contact_id:
            check.wrong_id.append(key)
        elif events.get(contact_id, 0) != 1:
            check.not_once[contact_id] = events.get(contact_id, 0)
    return check


def dead_letter_keys(database_url: str) -> set[str]:
    """Idempotency keys of the steps that ended in the dead-letter table."""
    with psycopg.connect(database_url) as conn:
        return {key for (key,) in conn.execute("SELECT idempotency_key FROM dead_letters")}


def pending_steps(database_url: str) -> int:
    """Steps still in the outbox."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM outbox").fetchone()
    return int(row[0]) if row else 0


def transaction_counts(database_url: str) -> tuple[int, int]:
    """Transactions committed and rolled back in this database since the server started."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def expected_keys(result: LoadResult) -> set[str]:
    """The step keys of every accepted run: `<run id>:<step index>`."""
    return {f"{run_id}:{i}" for run_id in result.runs.values() for i in range(STEPS)}


def check_deliveries(
    result: LoadResult, deliveries: list[Delivery], dead: set[str]
) -> DeliveryCheck:
    """Every step delivered (or dead-lettered) under one key; repeats of a key are counted."""
    expected = expected_keys(result)
    seen = Counter(d.key for d in deliveries)
    keys_by_step: dict[tuple[str, str], set[str]] = defaultdict(set)
    for d in deliveries:
        keys_by_step[(d.token, d.key.rpartition(":")[2])].add(d.key)
    return DeliveryCheck(
        expected_steps=len(expected),
        delivered_keys=len(expected & seen.keys()),
        dead_lettered=len(expected & dead),
        lost=sorted(expected - seen.keys() - dead),
        unexpected=sorted(seen.keys() - expected),
        two_keys=sorted(f"{t}/{s}" for (t, s), keys in keys_by_step.items() if len(keys) > 1),
        same_key_repeats=sum(n - 1 for n in seen.values() if n > 1),
    )


def delivery_rate(deliveries: list[Delivery]) -> float:
    """Calls per second at the peer, between its first and its last call."""
    times = sorted(d.at for d in deliveries)
    if len(times) < 2 or times[-1] == times[0]:
        return 0.0
    return (len(times) - 1) / (times[-1] - times[0])


def caller_errors_ok(attempts: Counter[str]) -> bool:
    """Whether every failed attempt nginx saw was UNAVAILABLE (gRPC 14, or HTTP 502/503/504,
    which gRPC clients read as UNAVAILABLE)."""
    allowed = {"OK", "grpc=14", "http=502", "http=503", "http=504"}
    return set(attempts) <= allowed
