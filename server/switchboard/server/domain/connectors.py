"""Connector use-cases: list with health, and the generic direct invocation."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct
from opentelemetry import metrics, trace

from switchboard.server.common.ids import new_id
from switchboard.server.common.timeutil import now_us, set_ts
from switchboard.server.config.flow import ConnectorSettings
from switchboard.server.connectors.base import Connector
from switchboard.server.dispatch.attempts import AttemptTelemetry, call_connector
from switchboard.server.dispatch.consent import ConsentGate
from switchboard.server.dispatch.guard import ConnectorGuard
from switchboard.server.dispatch.limits.base import Limits, Ticket
from switchboard.server.domain.idempotency import request_hash
from switchboard.server.domain.invoke_consent import require_consent
from switchboard.server.errors import (
    ConnectorError,
    IdempotencyConflict,
    NotFound,
    PermanentConnectorError,
    ResourceExhausted,
    SwitchboardError,
    Unavailable,
)
from switchboard.server.rules.validation import (
    MAX_KEY_NAME,
    Violations,
    check_idempotency_key,
    check_length,
    check_struct,
)
from switchboard.server.store.base import IdempotencyRecord, Store, WriteTx
from switchboard.v1 import connectors_pb2

log = logging.getLogger(__name__)
_HEALTH_TIMEOUT_S = 2.0
_HEALTH_TTL_S = 5.0
# Kept from the caller's deadline to record the call and send the answer.
_ANSWER_MARGIN_S = 0.05
Health = connectors_pb2.ConnectorHealth


@dataclass(slots=True)
class _Checked:
    health: int
    detail: str
    at_us: int
    monotonic: float


class ConnectorService:
    """The configured connectors, their health, and direct invocation."""

    def __init__(
        self,
        store: Store,
        connectors: Mapping[str, Connector],
        settings: Mapping[str, ConnectorSettings],
        telemetry: AttemptTelemetry | None = None,
        guards: Mapping[str, ConnectorGuard] | None = None,
        limits: Limits | None = None,
    ) -> None:
        self._store = store
        self._connectors = connectors
        self._settings = settings
        self._telemetry = telemetry or AttemptTelemetry(trace.NoOpTracer(), metrics.NoOpMeter(""))
        self._guards = guards or {}
        self._limits = limits
        self._consent = ConsentGate(store, connectors, settings)
        self._checked: dict[str, _Checked] = {}

    async def list(self) -> connectors_pb2.ListConnectorsResponse:
        """Every connector with a health check at most a few seconds old."""
        names = sorted(self._connectors)
        checks = await asyncio.gather(*(self._health(n) for n in names))
        resp = connectors_pb2.ListConnectorsResponse()
        for name, check in zip(names, checks, strict=True):
            c = self._connectors[name]
            info = resp.connectors.add(
                name=name,
                kind=c.kind,
                actions=sorted(c.actions),
                health=check.health,
                health_detail=check.detail,
                purposes=sorted(self._consent.purposes(name)),
            )
            set_ts(info.checked_at, check.at_us)
            guard = self._guards.get(name)
            if guard is not None:
                info.circuit = (
                    self._limits.circuit(name) if self._limits else guard.breaker.state
                )
                info.in_flight = guard.in_flight
        return resp

    async def _health(self, name: str) -> _Checked:
        cached = self._checked.get(name)
        if cached is not None and time.monotonic() - cached.monotonic < _HEALTH_TTL_S:
            return cached
        try:
            await asyncio.wait_for(self._connectors[name].health(), _HEALTH_TIMEOUT_S)
            check = _Checked(Health.CONNECTOR_HEALTH_SERVING, "", now_us(), time.monotonic())
        except Exception as exc:
            detail = (
                "health check timed out"
                if isinstance(exc, TimeoutError)
                else str(exc) or type(exc).__name__
            )
            check = _Checked(
                Health.CONNECTOR_HEALTH_NOT_SERVING, detail, now_us(), time.monotonic()
            )
        self._checked[name] = check
        return check

    async def invoke(
        self, req: connectors_pb2.InvokeConnectorRequest, time_left_s: float | None = None
    ) -> connectors_pb2.InvokeConnectorResponse:
        """Call one action now; record the call; replay a repeated idempotency key.

        The attempt is bounded by the connector's timeout and by the caller's remaining
        deadline (less a margin to record and answer), so it never outlives the caller.
        """
        v = Violations()
        for field in ("connector", "action"):
            value = getattr(req, field)
            if not value:
                v.add(field, "is required")
            check_length(v, field, value, MAX_KEY_NAME)
        check_struct(v, "payload", req.payload)
        check_idempotency_key(v, req.idempotency_key)
        v.raise_if_any()
        connector = self._connector(req.connector, req.action)
        key = req.idempotency_key or new_id("k")
        digest = request_hash(req)
        if req.idempotency_key:
            replay = await self._replay(req.idempotency_key, digest)
            if replay is not None:
                return replay
        await require_consent(self._consent, req)
        timeout = self._settings[req.connector].timeout_s
        if time_left_s is not None:
            timeout = max(0.001, min(timeout, time_left_s - _ANSWER_MARGIN_S))
        ok, result, error = await self._limited_call(connector, req, key, timeout)
        resp = connectors_pb2.InvokeConnectorResponse()
        if ok:
            resp.result.CopyFrom(_struct(result))
        await self._store.write(lambda tx: self._record(tx, req, digest, resp, ok, error))
        if error is not None:
            raise error
        return resp

    def _connector(self, name: str, action: str) -> Connector:
        connector = self._connectors.get(name)
        if connector is None:
            raise NotFound(
                f"no connector named {name!r} (configured: {', '.join(sorted(self._connectors))})"
            )
        if action not in connector.actions:
            raise NotFound(
                f"connector {name!r} has no action {action!r} "
                f"(its actions: {', '.join(sorted(connector.actions))})"
            )
        return connector

    async def _replay(self, key: str, digest: str) -> connectors_pb2.InvokeConnectorResponse | None:
        record = await self._store.read(lambda tx: tx.idempotency(key), point=True)
        if record is None:
            return None
        if record.method != "InvokeConnector" or record.request_hash != digest:
            raise IdempotencyConflict(
                f"idempotency key {key!r} was already used for a different "
                f"{record.method} request; use a new key for a new request"
            )
        return connectors_pb2.InvokeConnectorResponse.FromString(record.response)

    async def _limited_call(
        self,
        connector: Connector,
        req: connectors_pb2.InvokeConnectorRequest,
        key: str,
        limit_s: float,
    ) -> tuple[bool, dict[str, Any], SwitchboardError | None]:
        """The call within the connector's limits (shared with the dispatcher's deliveries):
        a slot, the daily quota's interactive lane, a rate token (waited for while the
        caller's deadline allows) and a closed circuit."""
        guard = self._guards.get(req.connector)
        if guard is None or self._limits is None:
            return await self._call(connector, req, key, limit_s)
        name = req.connector
        started = time.monotonic()
        ticket = await self._acquire(self._limits, name, limit_s)
        if not ticket.ok:
            raise _refused(name, ticket.reason, ticket.retry_in_s)
        limit_s = max(0.001, limit_s - (time.monotonic() - started))
        guard.in_flight += 1
        try:
            if ticket.delay_s >= limit_s:
                raise Unavailable(
                    f"connector {name!r} is at its rate limit; retry in {ticket.delay_s:.2g}s"
                )
            if not self._limits.admit(name, ticket):
                raise _refused(name, "circuit open", guard.breaker.reopens_in_s())
            if ticket.delay_s:
                await asyncio.sleep(ticket.delay_s)
            ok, result, error = await self._call(connector, req, key, limit_s - ticket.delay_s)
            # A permanent error is an answer: the tool is up (as in the dispatcher).
            self._limits.report(name, ok or isinstance(error, PermanentConnectorError), ticket)
            return ok, result, error
        finally:
            guard.in_flight -= 1
            self._limits.release(name, ticket)

    @staticmethod
    async def _acquire(limits: Limits, name: str, limit_s: float) -> Ticket:
        """A ticket; while every slot is busy, wait for one as long as the deadline allows
        (concurrent callers queue as they did before limits applied here). An open circuit
        or a used-up quota is answered at once."""
        give_up = time.monotonic() + limit_s
        pause = 0.005
        while True:
            ticket = await limits.acquire(name, "interactive")
            if ticket.ok or ticket.reason != "no free concurrency slot":
                return ticket
            if time.monotonic() + pause >= give_up:
                return ticket
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)

    async def _call(
        self,
        connector: Connector,
        req: connectors_pb2.InvokeConnectorRequest,
        key: str,
        limit_s: float,
    ) -> tuple[bool, dict[str, Any], SwitchboardError | None]:
        timeout = limit_s
        payload = json_format.MessageToDict(req.payload)
        try:
            result = await call_connector(
                connector,
                req.action,
                payload,
                telemetry=self._telemetry,
                timeout_s=timeout,
                idempotency_key=key,
            )
            return True, result, None
        except ConnectorError as exc:
            return False, {}, exc
        except TimeoutError:
            return (
                False,
                {},
                Unavailable(f"connector {req.connector!r} timed out after {timeout:g}s"),
            )
        except Exception:
            log.exception("connector %s failed on %s", req.connector, req.action)
            return (
                False,
                {},
                Unavailable(f"connector {req.connector!r} failed; the server logged why"),
            )

    @staticmethod
    def _record(
        tx: WriteTx,
        req: connectors_pb2.InvokeConnectorRequest,
        digest: str,
        resp: connectors_pb2.InvokeConnectorResponse,
        ok: bool,
        error: Exception | None,
    ) -> None:
        now = now_us()
        body = {
            "connector": req.connector,
            "action": req.action,
            "ok": ok,
            "permanent": isinstance(error, PermanentConnectorError),
            "consent_check_skipped": req.skip_consent_check,
        }
        tx.append_event("connector.invoked", req.connector, json.dumps(body).encode(), now)
        # Only successes are replayed: a failed call may succeed when retried with the same key.
        if ok and req.idempotency_key and tx.idempotency(req.idempotency_key) is None:
            record = IdempotencyRecord(
                "InvokeConnector", digest, resp.SerializeToString(), _payload_contact_id(req)
            )
            tx.put_idempotency(req.idempotency_key, record, now)


def _refused(name: str, reason: str, retry_in_s: float) -> SwitchboardError:
    """The status for a call its connector's limits refuse (none of it reached the tool)."""
    when = f"; retry in {retry_in_s:.3g}s" if retry_in_s > 0 else ""
    message = f"connector {name!r} refused the call: {reason}{when}"
    if reason.startswith("daily quota") or reason.startswith("no free"):
        return ResourceExhausted(message)
    return Unavailable(message)


def _payload_contact_id(req: connectors_pb2.InvokeConnectorRequest) -> str:
    """The id of the payload's contact, whose data the answer may hold ("" for none)."""
    contact = req.payload.fields.get("contact")
    if contact is None or contact.WhichOneof("kind") != "struct_value":
        return ""
    contact_id = contact.struct_value.fields.get("id")
    if contact_id is None or contact_id.WhichOneof("kind") != "string_value":
        return ""
    return contact_id.string_value


def _struct(value: dict[str, Any]) -> Struct:
    s = Struct()
    s.update(json.loads(json.dumps(value, default=str)))
    return s
