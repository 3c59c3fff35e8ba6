"""AMQP sink: publish each step to a RabbitMQ exchange, with publisher confirms.

Downstream systems subscribe through the queues they already run: bind a queue to the
exchange with a routing-key pattern (`newsletter.signup.*`, `#`). What a message holds is in
`amqp_message`. The library is aio-pika (asyncio, typed, on aiormq; confirms and
`mandatory` returns surface as exceptions on `publish`).

A step counts as delivered only when the broker confirms it (RabbitMQ "Publisher Confirms":
an ack means the message is in every queue it was routed to, persisted for durable queues).
So:

- ack → success, with `message_id` = the step's idempotency key;
- nack (e.g. a queue at `x-max-length` with `reject-publish`), no confirm within
  `confirm_timeout_s`, or a lost connection → `RetryableConnectorError` (a lost confirm may
  still have been delivered; consumers de-duplicate on `message_id`);
- no such exchange (404), access refused (403), or with `mandatory` (the default) a message
  no queue is bound for → `PermanentConnectorError`: retrying cannot route it.

Connection recovery: one connection and one confirm channel per connector, opened on first
use and opened again on the next step after the connection, the channel or the exchange
check failed. A plain connection rather than aio-pika's robust one: a step that failed on a
lost connection is retried by the dispatcher anyway, and reopening on demand keeps the
exchange check (passive declare) on every new connection instead of replaying state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from switchboard.server.connectors import amqp_message
from switchboard.server.connectors.base import (
    BatchItem,
    ConnectorState,
    InvokeContext,
    ItemOutcome,
    JsonDict,
    reject_unknown_options,
    require_action,
)
from switchboard.server.errors import (
    ConnectorError,
    PermanentConnectorError,
    RetryableConnectorError,
)

if TYPE_CHECKING:
    import aio_pika.abc


class AmqpConnector:
    """Publishes steps to one exchange; see the module docstring for the semantics.

    Options:
        url: `amqp://user@host:port/vhost`, or an `env:NAME` / `file:PATH` reference to one
            (required as a reference when the URL holds a password).
        exchange: the exchange to publish to (required).
        declare: {type = "topic", durable = true} to declare the exchange; without it the
            exchange must exist.
        routing_key: a template (default "${event}.${action}") over action, event,
            connector, run_id, contact_id and the step's string params.
        actions: action names accepted (default ["events.publish"]).
        format: "json" (default) or "protobuf" (a google.protobuf.Struct).
        schema, schema_version: the `schema` / `schema_version` headers
            (default "switchboard.step", "1").
        mandatory: an unroutable message fails (default true).
        confirm_timeout_s: wait this long for the broker's confirm (default 10).
        connect_timeout_s: connecting and checking the exchange (default 5).
        max_batch: messages one `invoke_batch` call publishes together (default 100).
        purposes: consent purposes the downstream use serves (default none).
    """

    kind: str = "amqp"

    def __init__(self, name: str, options: Mapping[str, Any], state: ConnectorState) -> None:
        reject_unknown_options(name, self.kind, options, amqp_message.OPTIONS)
        self.name = name
        self._settings = amqp_message.parse(name, options)
        self.actions: frozenset[str] = self._settings.actions
        self.purposes: frozenset[str] = self._settings.purposes
        self._connection: aio_pika.abc.AbstractConnection | None = None
        self._channel: aio_pika.abc.AbstractChannel | None = None
        self._exchange: aio_pika.abc.AbstractExchange | None = None
        self._lock = asyncio.Lock()

    def max_batch(self, action: str) -> int:
        """Messages one call may publish: the `max_batch` option."""
        return self._settings.max_batch

    async def invoke(self, action: str, payload: JsonDict, ctx: InvokeContext) -> JsonDict:
        """Publish one step and wait for the broker's confirm."""
        require_action(self, action)
        exchange = await self._open()
        outcome = await self._publish(exchange, action, payload, ctx)
        if isinstance(outcome, ConnectorError):
            raise outcome
        return outcome

    async def invoke_batch(self, action: str, items: Sequence[BatchItem]) -> list[ItemOutcome]:
        """Publish every item on one channel; each waits for its own confirm."""
        require_action(self, action)
        exchange = await self._open()
        return list(
            await asyncio.gather(
                *(self._publish(exchange, action, item.payload, item.ctx) for item in items)
            )
        )

    async def _publish(
        self,
        exchange: aio_pika.abc.AbstractExchange,
        action: str,
        payload: JsonDict,
        ctx: InvokeContext,
    ) -> ItemOutcome:
        import aio_pika

        s = self._settings
        try:
            key = amqp_message.routing_key(s, self.name, action, payload)
            message = aio_pika.Message(
                amqp_message.body(s, action, payload, ctx),
                headers=amqp_message.headers(s, action, payload, ctx),
                content_type=amqp_message.FORMATS[s.format],
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=ctx.idempotency_key,
                correlation_id=ctx.run_id or None,
                timestamp=datetime.now(UTC),
                type=action,
                app_id="switchboard",
            )
        except PermanentConnectorError as exc:
            return exc
        timeout = min(s.confirm_timeout_s, ctx.deadline_s or s.confirm_timeout_s)
        try:
            await exchange.publish(message, key, mandatory=s.mandatory, timeout=timeout)
        except Exception as exc:
            error = self._translate(exc, key)
            error.__cause__ = exc
            if not _is_per_message(exc):
                await self._forget(exchange)
            return error
        return {
            "published": True,
            "exchange": s.exchange,
            "routing_key": key,
            "message_id": ctx.idempotency_key,
        }

    async def _open(self) -> aio_pika.abc.AbstractExchange:
        """The exchange on a live confirm channel, connecting (again) when needed."""
        async with self._lock:
            exchange = self._exchange
            channel = self._channel
            if exchange is not None and channel is not None and not channel.is_closed:
                return exchange
            await self._close()
            try:
                self._exchange = await asyncio.wait_for(
                    self._connect(), self._settings.connect_timeout_s
                )
            except Exception as exc:
                await self._close()
                raise self._translate(exc, None) from exc
            return self._exchange

    async def _connect(self) -> aio_pika.abc.AbstractExchange:
        import aio_pika

        s = self._settings
        self._connection = await aio_pika.connect(s.url, timeout=s.connect_timeout_s)
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        self._channel = channel
        if s.declare_type is None:
            return await channel.get_exchange(s.exchange, ensure=True)
        return await channel.declare_exchange(s.exchange, s.declare_type, durable=s.durable)

    async def _forget(self, exchange: aio_pika.abc.AbstractExchange) -> None:
        """Drop the connection the failed publish used (not a newer one)."""
        async with self._lock:
            if self._exchange is exchange:
                await self._close()

    async def _close(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):  # already broken: closing is best effort
                await connection.close()

    def _translate(self, exc: BaseException, key: str | None) -> ConnectorError:
        from aiormq import exceptions as amqp

        s = self._settings
        where = f"amqp {self.name!r} ({s.where}, exchange {s.exchange!r})"
        if isinstance(exc, amqp.PublishError):
            return PermanentConnectorError(
                f"{where}: no queue is bound for routing key {key!r} (message returned)"
            )
        if isinstance(exc, amqp.DeliveryError):
            return RetryableConnectorError(f"{where}: the broker refused the message (nack)")
        if isinstance(exc, amqp.ChannelNotFoundEntity):
            return PermanentConnectorError(f"{where}: the exchange does not exist")
        if isinstance(exc, amqp.ChannelAccessRefused):
            return PermanentConnectorError(f"{where}: access refused")
        if isinstance(exc, amqp.ChannelPreconditionFailed):
            return PermanentConnectorError(f"{where}: the exchange exists with other settings")
        if isinstance(exc, amqp.AuthenticationError | amqp.ProbableAuthenticationError):
            return PermanentConnectorError(f"{where}: the broker refused the credentials")
        if isinstance(exc, TimeoutError):
            return RetryableConnectorError(f"{where}: no answer from the broker in time")
        return RetryableConnectorError(f"{where} unreachable: {type(exc).__name__}")

    async def health(self) -> None:
        """Connect and check the exchange (reusing a live connection)."""
        await self._open()

    async def aclose(self) -> None:
        """Close the connection."""
        async with self._lock:
            await self._close()


def _is_per_message(exc: BaseException) -> bool:
    """A nack or a return concerns one message; the channel stays usable."""
    from aiormq import exceptions as amqp

    return isinstance(exc, amqp.DeliveryError)
