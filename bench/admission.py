"""How long admitted imports wait under bulk overload: `python -m bench.admission [limit_s]
[seconds] [arrive_s]`.

The store's real writer, in this process, with imports that cost a known time: every
`arrive_s` (ARRIVE_S) an import arrives and is admitted while `store.bulk_backlog_s()`
reads under `limit_s` (what `limits.import_backlog_s` does), as four bulk parts of PART_S
each (a sleep on the commit thread): at the default, three times the bulk work the writer
can do; calls' writes arrive every CALL_S between them. Prints the admitted imports' waits
and the refusals. Sleeps instead of SQL, so the figures do not depend on the machine's
speed.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from switchboard.server.config.sections import DatabaseSettings
from switchboard.server.store.sqlite.store import SqliteStore

ARRIVE_S = 0.02
PART_S = 0.015
PARTS = 4
CALL_S = 0.005


async def trial(limit_s: float, seconds: float, arrive_s: float = ARRIVE_S) -> dict[str, float]:
    """Admitted imports' waits (p50, p99, max, s) and counts for one bound."""
    with tempfile.TemporaryDirectory(prefix="switchboard-admission-") as tmp:
        store = SqliteStore(DatabaseSettings(path=str(Path(tmp) / "a.db")))
        await store.open()
        waits: list[float] = []
        refused = 0
        imports: list[asyncio.Task[None]] = []
        pending_calls: set[asyncio.Future[None]] = set()

        async def one() -> None:
            t0 = time.perf_counter()
            await store.write_each([lambda tx: time.sleep(PART_S)] * PARTS)
            waits.append(time.perf_counter() - t0)

        async def calls(stop: float) -> None:
            while time.perf_counter() < stop:
                call = asyncio.ensure_future(store.write(lambda tx: None))
                pending_calls.add(call)
                call.add_done_callback(pending_calls.discard)
                await asyncio.sleep(CALL_S)

        stop = time.perf_counter() + seconds
        calling = asyncio.create_task(calls(stop))
        while time.perf_counter() < stop:
            if store.bulk_backlog_s() >= limit_s:
                refused += 1
            else:
                imports.append(asyncio.create_task(one()))
            await asyncio.sleep(arrive_s)
        await calling
        await asyncio.gather(*imports, *pending_calls)
        await store.close()
    q = statistics.quantiles(waits, n=100) if len(waits) > 1 else [0.0] * 99
    return {
        "admitted": len(waits),
        "refused": refused,
        "wait_p50_s": round(q[49], 3),
        "wait_p99_s": round(q[98], 3),
        "wait_max_s": round(max(waits, default=0.0), 3),
    }


def main() -> None:
    limit_s = float(sys.argv[1]) if len(sys.argv) > 1 else 0.5
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 20.0
    arrive_s = float(sys.argv[3]) if len(sys.argv) > 3 else ARRIVE_S
    result = asyncio.run(trial(limit_s, seconds, arrive_s))
    print(f"limit {limit_s} s, an import every {arrive_s} s for {seconds} s:", result)


if __name__ == "__main__":
    main()
