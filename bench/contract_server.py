"""A local contract server for the sync case: a batch endpoint that counts vendor calls.

`POST /batch` takes the webhook connector's batch body (`{"type", "timestamp", "batch":
[{"id", "data"}, ...]}`), checks that every item has an id and a contact, and answers
one result per item, as a vendor batch endpoint (HubSpot's batch upsert, for one) does.
`GET /stats` reports the calls and items received and when the first and last arrived.
"""

from __future__ import annotations

import argparse
import json
import time

from aiohttp import web


class Counts:
    """What the endpoint has received."""

    def __init__(self) -> None:
        self.calls = 0
        self.items = 0
        self.rejected = 0
        self.first_s = 0.0
        self.last_s = 0.0


def app() -> web.Application:
    counts = Counts()

    async def batch(request: web.Request) -> web.Response:
        body = json.loads(await request.read())
        items = body.get("batch")
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and i.get("id") and "contact" in i.get("data", {}) for i in items
        ):
            counts.rejected += 1
            return web.json_response({"message": "each item needs an id and a contact"}, status=400)
        now = time.time()
        counts.first_s = counts.first_s or now
        counts.last_s = now
        counts.calls += 1
        counts.items += len(items)
        results = [{"id": i["data"]["contact"].get("id", "")} for i in items]
        return web.json_response({"results": results})

    async def stats(_: web.Request) -> web.Response:
        return web.json_response(vars(counts))

    application = web.Application(client_max_size=16 * 2**20)
    application.router.add_post("/batch", batch)
    application.router.add_get("/stats", stats)
    return application


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    web.run_app(app(), host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
