"""Inbound webhooks: an HTTP endpoint (same process, its own port) that turns signed
third-party events into campaign triggers.

`POST /webhooks/<source>`: the body must be declared JSON (`application/json` or a
`+json` type, UTF-8; else 415), fit `max_body_bytes` (else 413) and carry a valid
Standard Webhooks signature by one of the source's secrets within `tolerance_s` (else 401).
Only then is it parsed and handed to `CampaignService.trigger` with the idempotency key
`webhook:<source>:<webhook-id>`: a repeated delivery of the same message returns the same
run, and the 200 is sent only after the run (with the event as its attributes) is committed.
A refused request records nothing.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from typing import Any

from aiohttp import web
from google.protobuf.struct_pb2 import Struct

from switchboard.server.common.paths import value_at
from switchboard.server.common.signing import SignatureError, decode_secret, verify
from switchboard.server.config.flow import InboundSettings, InboundSourceSettings
from switchboard.server.domain.campaigns import CampaignService
from switchboard.server.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    SwitchboardError,
    Unavailable,
)
from switchboard.server.runs.waits import correlation_key
from switchboard.v1 import campaigns_pb2, contacts_pb2

log = logging.getLogger(__name__)


def _json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _json_media_type(request: web.Request) -> bool:
    """Whether the request declares a JSON body: `application/json` or `application/*+json`
    (RFC 6839 suffix, e.g. CloudEvents), with no charset or UTF-8 (RFC 8259 allows no other).
    """
    mime = request.content_type.lower()  # aiohttp: application/octet-stream when absent
    if mime != "application/json" and not (
        mime.startswith("application/") and mime.endswith("+json")
    ):
        return False
    charset = request.charset
    return charset is None or charset.lower() in ("utf-8", "utf8")


def _unsupported_media_type(request: web.Request) -> web.Response:
    given = request.headers.get("Content-Type", "")[:100] or "none"
    response = _json_error(
        415, f"Content-Type must be application/json (UTF-8); this request sent {given!r}"
    )
    # RFC 9110 §15.5.16: name the media types that would have been accepted.
    response.headers["Accept"] = "application/json, application/*+json"
    return response


class _Source:
    def __init__(self, name: str, settings: InboundSourceSettings) -> None:
        self.name = name
        self.settings = settings
        self.keys = [decode_secret(s) for s in settings.secrets]


class InboundServer:
    """The aiohttp application and its listening site."""

    def __init__(
        self,
        settings: InboundSettings,
        campaigns: CampaignService,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._settings = settings
        self._tls = tls
        self._campaigns = campaigns
        self._sources = {n: _Source(n, s) for n, s in settings.sources.items()}
        # The size cap is enforced by aiohttp while reading, so an oversize body is never
        # held in memory whole.
        app = web.Application(client_max_size=settings.max_body_bytes)
        app.router.add_post("/webhooks/{source}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        self.port = 0

    async def start(self) -> None:
        """Bind and serve; `port` is the bound port (useful with port 0)."""
        host, _, port = self._settings.listen.rpartition(":")
        await self._runner.setup()
        # reuse_port: the workers of `serve --workers N` share this port, as they share gRPC's.
        site = web.TCPSite(
            self._runner, host.strip("[]"), int(port), ssl_context=self._tls, reuse_port=True
        )
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop accepting and finish requests in flight."""
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        source = self._sources.get(request.match_info["source"])
        if source is None:
            return _json_error(404, "unknown webhook source")
        # Before reading the body: a sender that posts a form or text is misconfigured, and
        # must hear so even when its signature would verify.
        if not _json_media_type(request):
            return _unsupported_media_type(request)
        limit = self._settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return _json_error(413, f"body larger than {limit} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _json_error(413, f"body larger than {limit} bytes")
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            msg_id = verify(source.keys, headers, body, time.time(), self._settings.tolerance_s)
        except SignatureError as exc:
            return _json_error(401, str(exc))
        return await self._accept(source, msg_id, body)

    async def _accept(self, source: _Source, msg_id: str, body: bytes) -> web.Response:
        try:
            data = json.loads(body)
        except ValueError:
            return _json_error(400, "body is not JSON")
        if not isinstance(data, dict):
            return _json_error(400, "body must be a JSON object")
        answer: dict[str, Any] = {}
        if source.settings.correlation_field is not None:
            answer["resumed"] = await self._resume(source, msg_id, data)
        if source.settings.event is None:
            return web.json_response(answer, status=200)
        email = value_at(data, source.settings.email_field)
        if not isinstance(email, str) or not email:
            return _json_error(422, f"no contact email at {source.settings.email_field!r}")
        attributes = Struct()
        attributes.update(data)
        req = campaigns_pb2.TriggerCampaignRequest(
            event=source.settings.event,
            contact=contacts_pb2.Contact(email=email),
            attributes=attributes,
            idempotency_key=f"webhook:{source.name}:{msg_id}",
        )
        return await self._trigger(req, answer)

    async def _resume(self, source: _Source, msg_id: str, data: dict[str, Any]) -> list[str]:
        field = source.settings.correlation_field or ""
        # The same normalisation as the run side (`start_wait`), so equal values meet.
        key = correlation_key(value_at(data, field))
        if key is None:
            return []
        branch = value_at(data, source.settings.branch_field)
        return await self._campaigns.resume(
            source.name, key, "" if branch is None else str(branch), data, msg_id
        )

    async def _trigger(
        self, req: campaigns_pb2.TriggerCampaignRequest, answer: dict[str, Any]
    ) -> web.Response:
        try:
            run = await self._campaigns.trigger(req, None)
        except (InvalidArgument, NotFound) as exc:
            return _json_error(422, exc.message)
        except FailedPrecondition as exc:
            # The same webhook-id with a different body, or an erased contact.
            return _json_error(409, exc.message)
        except (Unavailable, SwitchboardError) as exc:
            return _json_error(503, exc.message)
        except Exception:
            log.exception("inbound webhook failed")
            return _json_error(500, "internal error")
        return web.json_response({**answer, "run_id": run.id, "event": run.event}, status=200)
