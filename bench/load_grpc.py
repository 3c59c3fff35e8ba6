"""Closed-loop load from a Python grpc.aio client, in its own process: N calls in flight."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import grpc

from switchboard.v1 import campaigns_pb2, contacts_pb2, leads_pb2

EMAIL = "bench-{:05d}@example.com"


def _requests(
    kind: str, n_contacts: int, email: str = EMAIL
) -> tuple[str, Callable[[int], bytes], Callable[[bytes], Any]]:
    """Method path, a request builder by sequence number, and the response parser."""
    if kind == "echo":
        return (
            "/switchboard.bench.Echo/GetContact",
            lambda i: contacts_pb2.GetContactRequest(
                id="c_01M847PNZXWYG14T8DV5Y61M89"
            ).SerializeToString(),
            contacts_pb2.GetContactResponse.FromString,
        )
    if kind == "get_contact":
        return (
            "/switchboard.v1.ContactSync/GetContact",
            lambda i: contacts_pb2.GetContactRequest(
                email=email.format(i % n_contacts)
            ).SerializeToString(),
            contacts_pb2.GetContactResponse.FromString,
        )
    if kind == "upsert_contact":
        return (
            "/switchboard.v1.ContactSync/UpsertContact",
            lambda i: contacts_pb2.UpsertContactRequest(
                contact=contacts_pb2.Contact(email=email.format(i % n_contacts), first_name=f"F{i}")
            ).SerializeToString(),
            contacts_pb2.UpsertContactResponse.FromString,
        )
    if kind == "score_lead":
        return (
            "/switchboard.v1.LeadScoring/ScoreLead",
            lambda i: leads_pb2.ScoreLeadRequest(
                contact=leads_pb2.ContactRef(email=email.format(i % n_contacts))
            ).SerializeToString(),
            leads_pb2.ScoreLeadResponse.FromString,
        )
    if kind == "trigger_campaign":
        return (
            "/switchboard.v1.CampaignTriggers/TriggerCampaign",
            lambda i: campaigns_pb2.TriggerCampaignRequest(
                event="bench.noop",
                contact=contacts_pb2.Contact(email=email.format(i % n_contacts)),
            ).SerializeToString(),
            campaigns_pb2.TriggerCampaignResponse.FromString,
        )
    raise SystemExit(f"unknown kind {kind}")


async def run(
    target: str,
    kind: str,
    concurrency: int,
    seconds: float,
    warmup: float,
    n_contacts: int,
    email: str = EMAIL,
) -> dict[str, float]:
    method, build, parse = _requests(kind, n_contacts, email)
    latencies: list[float] = []
    counter = 0
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + seconds

        async def worker() -> None:
            nonlocal counter
            while True:
                counter += 1
                payload = build(counter)
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                reply = await call(payload, timeout=30)
                t1 = time.perf_counter()
                parse(reply)
                if t0 >= measure_from:
                    latencies.append(t1 - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    # counter also counts each worker's final, unsent iteration
    return {**summarize(latencies, seconds), "calls_total": counter - concurrency}


def summarize(latencies: list[float], seconds: float) -> dict[str, float]:
    """Requests/s and latency percentiles (ms) of the measured window."""
    latencies.sort()
    n = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(n - 1, int(p * n))] * 1000 if n else 0.0

    return {
        "rps": n / seconds,
        "p50_ms": pct(0.50),
        "p90_ms": pct(0.90),
        "p99_ms": pct(0.99),
        "calls": n,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("kind")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--email-format", default=EMAIL, help="str.format pattern for emails")
    args = parser.parse_args()
    import uvloop

    result = uvloop.run(
        run(
            args.target,
            args.kind,
            args.concurrency,
            args.seconds,
            args.warmup,
            args.contacts,
            args.email_format,
        )
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
