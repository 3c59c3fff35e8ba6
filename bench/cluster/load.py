"""The mixed load: closed-loop callers upserting and reading, and an open-loop trigger pacer.

Every call goes through the Python client with its retry policy (UNAVAILABLE retried with
backoff); what the driver records is what callers saw after those retries.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

from bench.cluster.replicas import EVENT
from switchboard.client import Switchboard, SwitchboardError

#: gRPC allows at most 4 retries; the failover needs all of them.
RETRIES = 4


@dataclass
class LoadResult:
    """What the callers saw."""

    upserts: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (email, id)
    runs: dict[str, str] = field(default_factory=dict)  # trigger token -> run id
    reads: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # final errors, by status
    failure_messages: list[str] = field(default_factory=list)  # the first few, to explain

    def fail(self, what: str, exc: SwitchboardError) -> None:
        """Note a call that failed after the client's retries."""
        self.failures[f"{what} {exc.code.name}"] += 1
        if len(self.failure_messages) < 5:
            self.failure_messages.append(f"{what}: {exc}")

    elapsed_s: float = 0.0

    @property
    def calls(self) -> int:
        """Calls that completed successfully."""
        return len(self.upserts) + len(self.runs) + self.reads

    @property
    def throughput(self) -> float:
        """Successful calls per second."""
        return self.calls / self.elapsed_s if self.elapsed_s else 0.0


async def _caller(sb: Switchboard, result: LoadResult, stop_at: float) -> None:
    """Upsert a new contact, then read it back; repeat until `stop_at`."""
    while time.monotonic() < stop_at:
        key = f"u-{uuid.uuid4().hex}"
        email = f"{key}@example.com"
        try:
            reply = await sb.contacts.upsert(email=email, idempotency_key=key)
        except SwitchboardError as exc:
            result.fail("upsert", exc)
            continue
        result.upserts[key] = (email, reply.contact.id)
        try:
            await sb.contacts.get(id=reply.contact.id)
        except SwitchboardError as exc:
            result.fail("get", exc)
            continue
        result.reads += 1


async def _trigger(sb: Switchboard, result: LoadResult) -> None:
    token = uuid.uuid4().hex
    try:
        run = await sb.campaigns.trigger(
            EVENT,
            email=f"t-{token}@example.com",
            attributes={"token": token},
            idempotency_key=f"t-{token}",
        )
    except SwitchboardError as exc:
        result.fail("trigger", exc)
        return
    result.runs[token] = run.id


async def _pacer(sb: Switchboard, result: LoadResult, per_s: float, stop_at: float) -> None:
    """Open loop: start a trigger every 1/per_s seconds whether or not earlier ones ended."""
    pending: set[asyncio.Task[None]] = set()
    start = time.monotonic()
    sent = 0
    while per_s > 0 and time.monotonic() < stop_at:
        pending.add(asyncio.create_task(_trigger(sb, result)))
        sent += 1
        await asyncio.sleep(max(0.0, start + sent / per_s - time.monotonic()))
    if pending:
        await asyncio.wait(pending)


async def drive(
    target: str, duration_s: float, *, callers: int, triggers_per_s: float, channels: int = 4
) -> LoadResult:
    """Run the load against `target` for `duration_s`; waits for calls in flight to end."""
    result = LoadResult()
    clients = [Switchboard(target, retries=RETRIES, timeout=15.0) for _ in range(channels)]
    start = time.monotonic()
    stop_at = start + duration_s
    try:
        await asyncio.gather(
            *(_caller(clients[i % channels], result, stop_at) for i in range(callers)),
            _pacer(clients[0], result, triggers_per_s, stop_at),
        )
    finally:
        result.elapsed_s = time.monotonic() - start
        for sb in clients:
            with contextlib.suppress(Exception):
                await sb.aclose()
    return result
