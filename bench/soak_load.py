"""The soak's open-loop load generator, in its own process (started by `bench.soak`).

Calls arrive on a fixed schedule (`rate` per second), whatever the server does: each call's
latency is measured from its scheduled time, so a server stall shows up as latency (the
calls scheduled during the stall wait), not as fewer calls, as it would in a closed loop.
The generator's own lag (actual start minus scheduled time) is reported per window, so a
slow generator can be told apart from a slow server.

Every `window_s` seconds it prints one JSON line: the window's latencies per method, its
errors and its lag; at the end, one line with every latency of the run per method.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from bench.soak import MIX, pick, window_summary
from switchboard.v1 import campaigns_pb2, contacts_pb2, leads_pb2

EMAIL = "bench-{:05d}@example.com"
IMPORT_EMAIL = "soak-import-{:06d}@example.com"
IMPORT_SPACE = 20_000  # imports cycle over these contacts: creates first, then updates
CHANNELS = 8  # like the run: 8 client connections


class Calls:
    """One coroutine per method name, over `CHANNELS` connections taken in turn."""

    def __init__(self, channels: list[grpc.aio.Channel], contacts: int) -> None:
        self._channels = channels
        self._contacts = contacts
        self._next = 0
        self._imported = 0

    def _channel(self) -> grpc.aio.Channel:
        self._next = (self._next + 1) % len(self._channels)
        return self._channels[self._next]

    def _email(self, rng: random.Random) -> str:
        return EMAIL.format(rng.randrange(self._contacts))

    async def call(self, method: str, rng: random.Random) -> None:
        ch = self._channel()
        if method == "GetContact":
            req: Any = contacts_pb2.GetContactRequest(email=self._email(rng))
            await _unary(ch, "ContactSync/GetContact", req, contacts_pb2.GetContactResponse)
        elif method == "UpsertContact":
            contact = contacts_pb2.Contact(email=self._email(rng), first_name=f"S{rng.random()}")
            req = contacts_pb2.UpsertContactRequest(contact=contact)
            await _unary(ch, "ContactSync/UpsertContact", req, contacts_pb2.UpsertContactResponse)
        elif method == "TriggerCampaign":
            req = campaigns_pb2.TriggerCampaignRequest(
                event="bench.noop", contact=contacts_pb2.Contact(email=self._email(rng))
            )
            await _unary(
                ch, "CampaignTriggers/TriggerCampaign", req, campaigns_pb2.TriggerCampaignResponse
            )
        elif method == "ScoreLead":
            req = leads_pb2.ScoreLeadRequest(contact=leads_pb2.ContactRef(email=self._email(rng)))
            await _unary(ch, "LeadScoring/ScoreLead", req, leads_pb2.ScoreLeadResponse)
        elif method == "RecordActivity":
            req = leads_pb2.RecordActivityRequest(
                contact=leads_pb2.ContactRef(email=self._email(rng)),
                activity=leads_pb2.Activity(type=leads_pb2.ACTIVITY_TYPE_PAGE_VIEW),
            )
            await _unary(ch, "LeadScoring/RecordActivity", req, leads_pb2.RecordActivityResponse)
        elif method == "ListContacts":
            req = contacts_pb2.ListContactsRequest(list="newsletter", page_size=50)
            await _unary(ch, "ContactSync/ListContacts", req, contacts_pb2.ListContactsResponse)
        elif method == "ListRuns":
            req = campaigns_pb2.ListRunsRequest(page_size=50)
            await _unary(ch, "CampaignTriggers/ListRuns", req, campaigns_pb2.ListRunsResponse)
        elif method == "ImportContacts":
            await self._import(ch)
        else:
            raise ValueError(method)

    async def _import(self, ch: grpc.aio.Channel) -> None:
        start, self._imported = self._imported, self._imported + 100
        rows = [
            contacts_pb2.Contact(
                email=IMPORT_EMAIL.format(i % IMPORT_SPACE), first_name=f"I{i}", lists=["soak"]
            )
            for i in range(start, start + 100)
        ]
        stream = ch.stream_unary(
            "/switchboard.v1.ContactSync/ImportContacts",
            request_serializer=contacts_pb2.ImportContactsRequest.SerializeToString,
            response_deserializer=contacts_pb2.ImportContactsResponse.FromString,
        )

        def requests() -> Iterator[contacts_pb2.ImportContactsRequest]:
            yield contacts_pb2.ImportContactsRequest(contacts=rows)

        reply = await stream(requests(), timeout=30)
        if reply.failed:
            raise RuntimeError(f"{reply.failed} import rows failed")


async def _unary(ch: grpc.aio.Channel, path: str, req: Any, resp: Any) -> None:
    call = ch.unary_unary(
        f"/switchboard.v1.{path}",
        request_serializer=type(req).SerializeToString,
        response_deserializer=resp.FromString,
    )
    await call(req, timeout=30)


async def run(
    target: str,
    rate: float,
    seconds: float,
    window_s: float,
    contacts: int,
    emit: Callable[..., Any],
) -> None:
    # A local subchannel pool per channel: otherwise grpc shares one TCP connection among
    # channels to the same address, and every call lands on one worker.
    local: list[tuple[str, Any]] = [("grpc.use_local_subchannel_pool", 1)]
    if target.startswith("ipv4:"):  # one address per worker: each channel balances calls
        local.append(("grpc.lb_policy_name", "round_robin"))
    channels = [grpc.aio.insecure_channel(target, options=local) for _ in range(CHANNELS)]
    calls = Calls(channels, contacts)
    rng = random.Random(16)
    interval = 1.0 / rate
    window: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    shown: dict[str, int] = {}
    lags: list[float] = []
    everything: dict[str, list[float]] = {}
    in_flight: set[asyncio.Task[None]] = set()

    async def one(method: str, scheduled: float) -> None:
        lags.append(time.perf_counter() - scheduled)
        try:
            await calls.call(method, rng)
        except Exception as exc:  # counted, never fatal: the run goes on
            # By status too: an import refused at once under overload is not one that
            # timed out after waiting.
            code = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else "CLIENT"
            kind = f"{method} {code}"
            errors[kind] = errors.get(kind, 0) + 1
            shown[kind] = shown.get(kind, 0) + 1
            if shown[kind] <= 2:  # the first of each kind, not thousands of lines
                print(f"{method}: {exc!r}"[:300], file=sys.stderr, flush=True)
            return
        took = time.perf_counter() - scheduled
        window.setdefault(method, []).append(took)
        everything.setdefault(method, []).append(took)

    start = time.perf_counter()
    next_window = start + window_s
    index = 0
    n = 0
    stop_at = start + seconds
    while True:
        scheduled = start + n * interval
        if scheduled >= stop_at:
            break
        now = time.perf_counter()
        if scheduled > now:
            await asyncio.sleep(scheduled - now)
        task = asyncio.create_task(one(pick(MIX, rng.random()), scheduled))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
        n += 1
        if time.perf_counter() >= next_window:
            emit(window_summary(index, window, errors, lags, len(in_flight)))
            window, errors, lags = {}, {}, []
            index += 1
            next_window += window_s
    if in_flight:
        await asyncio.wait(in_flight, timeout=60)
    if window:
        emit(window_summary(index, window, errors, lags, len(in_flight)))
    emit({"final": True, "scheduled": n, "latencies_s": everything})
    for ch in channels:
        await ch.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("--rate", type=float, default=300.0)
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--window", type=float, default=15.0)
    parser.add_argument("--contacts", type=int, default=5000)
    args = parser.parse_args()
    import uvloop

    def emit(line: dict[str, Any]) -> None:
        print(json.dumps(line), flush=True)

    uvloop.run(run(args.target, args.rate, args.seconds, args.window, args.contacts, emit))


if __name__ == "__main__":
    main()
