"""The amqp connector's settings and the message it publishes for one step.

A message is the step as an envelope `{id, type, event, time, data}` (`data` is the step's
payload: contact, params, attributes), as JSON or as a `google.protobuf.Struct`. Its AMQP
properties say what it is without opening the body: `content_type`, `message_id` (the
step's idempotency key, stable across retries, so consumers can de-duplicate),
`correlation_id` (the run), `type` (the action), persistent delivery, and the headers
`schema`, `schema_version`, `action`, `event`, `run_id`, `attempt`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from string import Template
from typing import Any
from urllib.parse import urlsplit

from switchboard.server.config.security import resolve_secret
from switchboard.server.connectors.base import InvokeContext, JsonDict
from switchboard.server.connectors.options import purposes_option, string_list
from switchboard.server.errors import PermanentConnectorError

OPTIONS = frozenset(
    {
        "url",
        "exchange",
        "declare",
        "routing_key",
        "actions",
        "format",
        "schema",
        "schema_version",
        "mandatory",
        "confirm_timeout_s",
        "connect_timeout_s",
        "max_batch",
        "purposes",
    }
)
FORMATS = {"json": "application/json", "protobuf": "application/protobuf"}
_EXCHANGE_TYPES = ("direct", "fanout", "topic", "headers")
_MAX_ROUTING_KEY_BYTES = 255  # AMQP 0-9-1: a short string


@dataclass(frozen=True, slots=True)
class AmqpSettings:
    """The validated options of one amqp connector."""

    url: str
    where: str  # host:port/vhost, safe to show (no credentials)
    exchange: str
    declare_type: str | None  # None: the exchange must exist (passive check)
    durable: bool
    routing_key: Template
    actions: frozenset[str]
    format: str
    schema: str
    schema_version: str
    mandatory: bool
    confirm_timeout_s: float
    connect_timeout_s: float
    max_batch: int
    purposes: frozenset[str]


def parse(name: str, options: Mapping[str, Any]) -> AmqpSettings:
    """Validate the options; errors name the connector and the option."""
    url, where = _url(name, options.get("url"))
    exchange = options.get("exchange")
    if not isinstance(exchange, str) or not exchange:
        raise ValueError(f"connector {name!r}: option 'exchange' (a name) is required")
    declare_type, durable = _declare(name, options.get("declare"))
    fmt = options.get("format", "json")
    if fmt not in FORMATS:
        raise ValueError(f"connector {name!r}: option 'format' must be one of {sorted(FORMATS)}")
    max_batch = int(options.get("max_batch", 100))
    if not 1 <= max_batch <= 10_000:
        raise ValueError(f"connector {name!r}: option 'max_batch' must be 1..10000")
    mandatory = options.get("mandatory", True)
    if not isinstance(mandatory, bool):
        raise ValueError(f"connector {name!r}: option 'mandatory' must be a bool")
    return AmqpSettings(
        url=url,
        where=where,
        exchange=exchange,
        declare_type=declare_type,
        durable=durable,
        routing_key=Template(str(options.get("routing_key", "${event}.${action}"))),
        actions=frozenset(string_list(name, "actions", options.get("actions", ["events.publish"]))),
        format=str(fmt),
        schema=str(options.get("schema", "switchboard.step")),
        schema_version=str(options.get("schema_version", "1")),
        mandatory=mandatory,
        confirm_timeout_s=float(options.get("confirm_timeout_s", 10.0)),
        connect_timeout_s=float(options.get("connect_timeout_s", 5.0)),
        max_batch=max_batch,
        purposes=purposes_option(name, options),
    )


def _url(name: str, value: Any) -> tuple[str, str]:
    if not isinstance(value, str) or not value:
        raise ValueError(f"connector {name!r}: option 'url' (amqp://host:port/vhost) is required")
    is_reference = value.startswith(("env:", "file:"))
    try:
        url = resolve_secret(value).decode() if is_reference else value
    except ValueError as exc:
        raise ValueError(f"connector {name!r}: option 'url': {exc}") from exc
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise ValueError(f"connector {name!r}: option 'url' must be an amqp:// or amqps:// URL")
    if parts.password and not is_reference:
        raise ValueError(
            f"connector {name!r}: option 'url' holds a password: give it as `env:NAME` or "
            "`file:PATH` so the secret stays out of the settings file"
        )
    where = f"{parts.hostname}:{parts.port or (5671 if parts.scheme == 'amqps' else 5672)}"
    return url, where + (parts.path or "/")


def _declare(name: str, value: Any) -> tuple[str | None, bool]:
    if value is None:
        return None, True
    if not isinstance(value, Mapping) or set(value) - {"type", "durable"}:
        raise ValueError(f"connector {name!r}: option 'declare' takes type and durable")
    kind = value.get("type", "topic")
    if kind not in _EXCHANGE_TYPES:
        raise ValueError(f"connector {name!r}: 'declare.type' must be one of {_EXCHANGE_TYPES}")
    return str(kind), bool(value.get("durable", True))


def routing_key(settings: AmqpSettings, connector: str, action: str, payload: JsonDict) -> str:
    """The step's routing key from the template; a missing field fails permanently."""
    contact = payload.get("contact")
    fields: dict[str, str] = {
        k: str(v) for k, v in (payload.get("params") or {}).items() if isinstance(v, str | int)
    }
    fields.update(
        action=action,
        event=str(payload.get("event", "")),
        connector=connector,
        run_id=str(payload.get("run_id", "")),
        contact_id=str(contact.get("id", "")) if isinstance(contact, dict) else "",
    )
    try:
        key = settings.routing_key.substitute(fields)
    except (KeyError, ValueError) as exc:
        raise PermanentConnectorError(f"routing key placeholder {exc} has no value") from exc
    if len(key.encode()) > _MAX_ROUTING_KEY_BYTES:
        raise PermanentConnectorError(f"routing key longer than {_MAX_ROUTING_KEY_BYTES} bytes")
    return key


def body(settings: AmqpSettings, action: str, payload: JsonDict, ctx: InvokeContext) -> bytes:
    """The envelope, encoded as the settings' format."""
    envelope = {
        "id": ctx.idempotency_key,
        "type": action,
        "event": str(payload.get("event", "")),
        "time": datetime.now(UTC).isoformat(),
        "data": payload,
    }
    text = json.dumps(envelope, separators=(",", ":"), default=str)
    if settings.format == "json":
        return text.encode()
    from google.protobuf import json_format, struct_pb2

    return json_format.ParseDict(json.loads(text), struct_pb2.Struct()).SerializeToString()


def headers(
    settings: AmqpSettings, action: str, payload: JsonDict, ctx: InvokeContext
) -> dict[str, Any]:
    """The message headers: schema name and version first."""
    found: dict[str, Any] = {
        "schema": settings.schema,
        "schema_version": settings.schema_version,
        "action": action,
        "event": str(payload.get("event", "")),
        "run_id": ctx.run_id,
        "attempt": ctx.attempt,
    }
    if settings.format == "protobuf":
        found["proto_message"] = "google.protobuf.Struct"
    return found
