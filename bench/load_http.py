"""Closed-loop load from a Python aiohttp client against the REST baseline."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp

from bench.load_grpc import summarize


async def run(
    base: str, kind: str, concurrency: int, seconds: float, warmup: float, n_contacts: int
) -> dict[str, float]:
    latencies: list[float] = []
    counter = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base, connector=connector) as session:
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + seconds

        async def one(i: int) -> None:
            email = f"bench-{i % n_contacts:05d}@example.com"
            if kind == "get_contact":
                async with session.get("/v1/contacts", params={"email": email}) as resp:
                    resp.raise_for_status()
                    await resp.json()
            else:
                body = {"email": email, "first_name": f"F{i}"}
                async with session.put("/v1/contacts", json=body) as resp:
                    resp.raise_for_status()
                    await resp.json()

        async def worker() -> None:
            nonlocal counter
            while True:
                counter += 1
                t0 = time.perf_counter()
                if t0 >= stop_at:
                    return
                await one(counter)
                if t0 >= measure_from:
                    latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {**summarize(latencies, seconds), "calls_total": counter - concurrency}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("base")
    parser.add_argument("kind", choices=["get_contact", "upsert_contact"])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--contacts", type=int, default=1000)
    args = parser.parse_args()
    import uvloop

    print(
        json.dumps(
            uvloop.run(
                run(
                    args.base, args.kind, args.concurrency, args.seconds, args.warmup, args.contacts
                )
            )
        )
    )


if __name__ == "__main__":
    main()
