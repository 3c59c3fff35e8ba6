"""The GA4 Measurement Protocol as documented: /mp/collect and its validation server.

Like GA4, `/mp/collect` answers 204 whatever the body (a malformed event is dropped
silently; the fake records it as a violation). `/debug/mp/collect` answers
`{"validationMessages": [...]}` describing what is wrong.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from tests.connectors.vendors.contract import ContractServer, Reply, Seen

MEASUREMENT_ID = "G-TEST123"
API_SECRET = "mp_secret_abc"
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")


def install(server: ContractServer) -> None:
    async def collect(seen: Seen) -> web.StreamResponse:
        for message in validate(seen):
            server.violation(seen, message["description"])
        return web.Response(status=204)

    async def debug(seen: Seen) -> web.StreamResponse:
        return Reply(200, {"validationMessages": validate(seen)}).response()

    server.route("POST", "/mp/collect", collect)
    server.route("POST", "/debug/mp/collect", debug)


def validate(seen: Seen) -> list[dict[str, str]]:
    """The validation server's messages for a request (empty: valid)."""
    problems: list[tuple[str, str, str]] = []
    if seen.query.get("measurement_id") != MEASUREMENT_ID:
        problems.append(("measurement_id", "unknown measurement_id", "VALUE_INVALID"))
    if seen.query.get("api_secret") != API_SECRET:
        problems.append(("api_secret", "wrong api_secret", "VALUE_INVALID"))
    if seen.headers.get("content-type", "").split(";")[0] != "application/json":
        problems.append(("", "content-type must be application/json", "VALUE_INVALID"))
    if len(seen.body) >= 130_000:
        problems.append(("", "post body must be smaller than 130kB", "VALUE_OUT_OF_BOUNDS"))
    body: Any = seen.json()
    if not isinstance(body.get("client_id"), str) or not body["client_id"]:
        problems.append(("client_id", "client_id is required", "VALUE_REQUIRED"))
    if "user_id" in body and not isinstance(body["user_id"], str):
        problems.append(("user_id", "user_id must be a string", "VALUE_INVALID"))
    for key, value in (body.get("consent") or {}).items():
        if key not in ("ad_user_data", "ad_personalization") or value not in ("GRANTED", "DENIED"):
            problems.append((f"consent.{key}", f"invalid consent {value!r}", "VALUE_INVALID"))
    events = body.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= 25:
        problems.append(("events", "1 to 25 events per request", "VALUE_OUT_OF_BOUNDS"))
        events = []
    for index, event in enumerate(events):
        name = event.get("name", "")
        if not _NAME.match(name):
            problems.append(
                ("events", f"Event at index: [{index}] has invalid name [{name}].", "NAME_INVALID")
            )
        params = event.get("params", {})
        if len(params) > 25:
            problems.append(("events.params", "at most 25 params", "VALUE_OUT_OF_BOUNDS"))
        for key, value in params.items():
            if not _NAME.match(key):
                problems.append(("events.params", f"invalid param name [{key}]", "NAME_INVALID"))
            if isinstance(value, str) and len(value) > 100:
                problems.append(("events.params", f"param [{key}] too long", "VALUE_OUT_OF_BOUNDS"))
        if "value" in params and "currency" not in params:
            problems.append(("events.params.currency", "currency required", "VALUE_REQUIRED"))
    return [
        {"fieldPath": path, "description": text, "validationCode": code}
        for path, text, code in problems
    ]
