"""Segment's HTTP Tracking API as documented (HTTP API Source page): checks and answers."""

from __future__ import annotations

import base64
import json

from aiohttp import web

from tests.connectors.vendors.contract import ContractServer, Reply, Seen

WRITE_KEY = "wk_test_123"
KB = 1024
_METHODS = {"identify", "track", "group", "page", "screen", "alias"}


def install(server: ContractServer) -> None:
    """Routes for /v1/identify, /v1/track and /v1/batch."""

    async def single(seen: Seen) -> web.StreamResponse:
        kind = seen.path.rsplit("/", 1)[-1]
        if not _headers_ok(server, seen):
            return Reply(401, {"error": "unauthorized"}).response()
        if len(seen.body) > 32 * KB:
            return Reply(400, {"error": "payload too large"}).response()
        _check_message(server, seen, seen.json(), kind)
        return Reply(200, {"success": True}).response()

    async def batch(seen: Seen) -> web.StreamResponse:
        if not _headers_ok(server, seen):
            return Reply(401, {"error": "unauthorized"}).response()
        if len(seen.body) > 500 * KB:
            server.violation(seen, f"batch of {len(seen.body)} bytes (max 500 KB)")
            return Reply(400, {"error": "payload too large"}).response()
        document = seen.json()
        events = document.get("batch")
        if not isinstance(events, list) or not events:
            server.violation(seen, "no 'batch' array")
            return Reply(400, {"error": "bad batch"}).response()
        if len(events) > 2500:
            server.violation(seen, f"{len(events)} events in a batch (max 2500)")
        for event in events:
            _check_message(server, seen, event, event.get("type", ""))
        return Reply(200, {"success": True}).response()

    for kind in ("identify", "track"):
        server.route("POST", f"/v1/{kind}", single)
    server.route("POST", "/v1/batch", batch)


def _headers_ok(server: ContractServer, seen: Seen) -> bool:
    if seen.headers.get("content-type", "").split(";")[0] != "application/json":
        server.violation(seen, "content-type must be application/json")
    expected = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()
    if seen.headers.get("authorization") != expected:
        server.violation(seen, "authorization must be Basic base64('<write key>:')")
        return False
    return True


def _check_message(
    server: ContractServer, seen: Seen, message: dict[str, object], kind: str
) -> None:
    if kind not in _METHODS:
        server.violation(seen, f"event type {kind!r} is not a Segment method")
    if len(json.dumps(message, separators=(",", ":")).encode()) > 32 * KB:
        server.violation(seen, "an event over 32 KB")
    if not (message.get("userId") or message.get("anonymousId")):
        server.violation(seen, "neither userId nor anonymousId")
    message_id = message.get("messageId")
    if not isinstance(message_id, str) or not 0 < len(message_id) < 100:
        server.violation(seen, "messageId must be a string of fewer than 100 characters")
    if kind == "track" and not message.get("event"):
        server.violation(seen, "track without 'event'")
    if kind == "identify" and not isinstance(message.get("traits", {}), dict):
        server.violation(seen, "traits must be an object")
