"""The amqp connector against a real rabbitmq-server on 127.0.0.1 (started by the tests)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from google.protobuf import json_format, struct_pb2

from switchboard.client import Switchboard
from switchboard.server.app.build import App
from switchboard.server.config.settings import defaults
from switchboard.server.connectors.amqp import AmqpConnector
from switchboard.server.connectors.base import BatchItem, InvokeContext, JsonDict
from switchboard.server.connectors.memory_state import InMemoryState
from switchboard.server.errors import PermanentConnectorError, RetryableConnectorError
from switchboard.v1 import campaigns_pb2
from tests.rabbitmq_server import RabbitMQServer, find_rabbitmq_server

pytestmark = pytest.mark.slow  # starts (and restarts) a broker process

EXCHANGE = "marketing.events"
CTX = InvokeContext(idempotency_key="r_1:2", run_id="r_1", step_index=2, attempt=1)


@pytest.fixture(scope="module")
def rabbit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitMQServer]:
    script, why = find_rabbitmq_server()
    if script is None:
        pytest.skip(why)
    server = RabbitMQServer(script, tmp_path_factory.mktemp("rabbitmq"))
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def amqp_url(rabbit: RabbitMQServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """The URL holds a password, so the connector takes it by reference."""
    monkeypatch.setenv("SB_TEST_AMQP_URL", rabbit.url)
    return "env:SB_TEST_AMQP_URL"


@pytest.fixture
async def channel(rabbit: RabbitMQServer) -> AsyncIterator[AbstractChannel]:
    """A consumer's side: the exchange (topic, durable) declared fresh for each test."""
    connection = await aio_pika.connect(rabbit.url)
    chan = await connection.channel()
    await chan.exchange_delete(EXCHANGE)
    await chan.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    try:
        yield chan
    finally:
        await connection.close()


async def bound_queue(
    channel: AbstractChannel, name: str, pattern: str = "#", **arguments: Any
) -> AbstractQueue:
    await channel.queue_delete(name)
    queue = await channel.declare_queue(name, durable=True, arguments=arguments or None)
    await queue.bind(EXCHANGE, pattern)
    return queue


async def take(queue: AbstractQueue) -> AbstractIncomingMessage:
    message = await queue.get(timeout=5, fail=True)
    assert message is not None
    await message.ack()
    return message


def connector(url: str, **options: Any) -> AmqpConnector:
    return AmqpConnector("sink", {"url": url, "exchange": EXCHANGE, **options}, InMemoryState())


@pytest.fixture
async def sink(amqp_url: str) -> AsyncIterator[AmqpConnector]:
    made = connector(amqp_url)
    yield made
    await made.aclose()


def payload(contact_id: str = "c1", **params: Any) -> JsonDict:
    return {
        "event": "newsletter.signup",
        "run_id": "r_1",
        "contact": {"id": contact_id, "email": f"{contact_id}@example.org"},
        "params": params,
    }


async def test_a_published_step_arrives_with_headers_and_body(
    channel: AbstractChannel, sink: AmqpConnector
) -> None:
    queue = await bound_queue(channel, "crm-sync", "newsletter.signup.#")

    result = await sink.invoke("events.publish", payload(list="news"), CTX)

    message = await take(queue)
    assert result == {
        "published": True,
        "exchange": EXCHANGE,
        "routing_key": "newsletter.signup.events.publish",
        "message_id": "r_1:2",
    }
    assert message.routing_key == "newsletter.signup.events.publish"
    assert message.content_type == "application/json"
    assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert (message.message_id, message.correlation_id, message.type) == (
        "r_1:2",
        "r_1",
        "events.publish",
    )
    assert message.headers == {
        "schema": "switchboard.step",
        "schema_version": "1",
        "action": "events.publish",
        "event": "newsletter.signup",
        "run_id": "r_1",
        "attempt": 1,
    }
    envelope = json.loads(message.body)
    assert {k: envelope[k] for k in ("id", "type", "event")} == {
        "id": "r_1:2",
        "type": "events.publish",
        "event": "newsletter.signup",
    }
    assert envelope["data"] == payload(list="news")


async def test_protobuf_format_and_templated_routing_key(
    channel: AbstractChannel, amqp_url: str
) -> None:
    queue = await bound_queue(channel, "proto", "contacts.#")
    sink = connector(
        amqp_url, format="protobuf", routing_key="contacts.${contact_id}.${list}", schema="crm"
    )
    try:
        await sink.invoke("events.publish", payload("c7", list="vip"), CTX)
    finally:
        await sink.aclose()

    message = await take(queue)
    assert message.routing_key == "contacts.c7.vip"
    assert message.content_type == "application/protobuf"
    assert message.headers["proto_message"] == "google.protobuf.Struct"
    assert message.headers["schema"] == "crm"
    decoded = json_format.MessageToDict(struct_pb2.Struct.FromString(message.body))
    assert decoded["data"]["contact"]["id"] == "c7"


async def test_a_missing_exchange_is_permanent(channel: AbstractChannel, amqp_url: str) -> None:
    sink = AmqpConnector("sink", {"url": amqp_url, "exchange": "nope"}, InMemoryState())
    try:
        with pytest.raises(PermanentConnectorError, match="exchange does not exist"):
            await sink.invoke("events.publish", payload(), CTX)
        with pytest.raises(PermanentConnectorError, match="exchange does not exist"):
            await sink.health()
    finally:
        await sink.aclose()


async def test_exchange_deleted_under_a_publisher_is_permanent_then_recovers(
    channel: AbstractChannel, sink: AmqpConnector
) -> None:
    queue = await bound_queue(channel, "recover")
    await sink.invoke("events.publish", payload(), CTX)
    await channel.exchange_delete(EXCHANGE)

    with pytest.raises(PermanentConnectorError, match="exchange does not exist"):
        await sink.invoke("events.publish", payload(), CTX)

    await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    await queue.bind(EXCHANGE, "#")
    await sink.invoke("events.publish", payload(), InvokeContext(idempotency_key="r_1:3"))
    ids = [(await take(queue)).message_id, (await take(queue)).message_id]
    assert ids == ["r_1:2", "r_1:3"]


async def test_an_unroutable_message_is_permanent(
    channel: AbstractChannel, sink: AmqpConnector
) -> None:
    await bound_queue(channel, "elsewhere", "lead.#")

    with pytest.raises(PermanentConnectorError, match="no queue is bound"):
        await sink.invoke("events.publish", payload(), CTX)
    # the channel survives a returned message: the next step publishes
    queue = await bound_queue(channel, "signups", "newsletter.#")
    await sink.invoke("events.publish", payload(), CTX)
    assert (await take(queue)).message_id == "r_1:2"


async def test_a_nack_is_retryable(channel: AbstractChannel, sink: AmqpConnector) -> None:
    # A full queue whose overflow policy is reject-publish makes the broker nack.
    await bound_queue(channel, "full", **{"x-max-length": 1, "x-overflow": "reject-publish"})
    await sink.invoke("events.publish", payload(), CTX)

    with pytest.raises(RetryableConnectorError, match="nack"):
        await sink.invoke("events.publish", payload(), InvokeContext(idempotency_key="r_1:3"))


async def test_invoke_batch_publishes_every_item_with_its_own_outcome(
    channel: AbstractChannel, amqp_url: str
) -> None:
    queue = await bound_queue(channel, "batch", "contact.changed.#")
    sink = connector(amqp_url, routing_key="${event}.${region}")
    items = [
        BatchItem(
            {"event": "contact.changed", "contact": {"id": f"c{i}"}, "params": {"region": "eu"}},
            InvokeContext(idempotency_key=f"sync:{i}"),
        )
        for i in range(20)
    ]
    items[7] = BatchItem({"event": "contact.changed", "params": {}}, items[7].ctx)
    try:
        outcomes = await sink.invoke_batch("events.publish", items)
    finally:
        await sink.aclose()

    assert sink.max_batch("events.publish") == 100
    assert isinstance(outcomes[7], PermanentConnectorError)
    assert "region" in str(outcomes[7])
    published = [o for o in outcomes if isinstance(o, dict)]
    assert len(published) == 19
    received = sorted([str((await take(queue)).message_id) for _ in range(19)])
    assert received == sorted(f"sync:{i}" for i in range(20) if i != 7)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"url": "amqp://u:secret@h/"}, "holds a password", id="literal-password"),
        pytest.param({"url": "http://h/"}, "amqp://", id="not-amqp"),
        pytest.param({"url": "env:SB_TEST_UNSET_URL"}, "SB_TEST_UNSET_URL", id="unset-env"),
        pytest.param({"exchange": ""}, "'exchange'", id="no-exchange"),
        pytest.param({"format": "xml"}, "'format'", id="bad-format"),
        pytest.param({"declare": {"type": "x"}}, "declare.type", id="bad-exchange-type"),
        pytest.param({"purposes": ["ads"]}, "unknown purpose", id="bad-purpose"),
        pytest.param({"queue": "q"}, "unknown", id="unknown-option"),
    ],
)
def test_bad_options(monkeypatch: pytest.MonkeyPatch, options: JsonDict, message: str) -> None:
    monkeypatch.delenv("SB_TEST_UNSET_URL", raising=False)
    settings = {"url": "amqp://guest@127.0.0.1/", "exchange": EXCHANGE, **options}
    with pytest.raises(ValueError, match=message):
        AmqpConnector("sink", settings, InMemoryState())


async def test_unreachable_broker_is_retryable() -> None:
    from tests.rabbitmq_server import free_port

    sink = connector(f"amqp://guest@127.0.0.1:{free_port()}/", connect_timeout_s=2)
    try:
        with pytest.raises(RetryableConnectorError, match="unreachable"):
            await sink.invoke("events.publish", payload(), CTX)
    finally:
        await sink.aclose()


async def test_publish_flow_through_the_server(
    channel: AbstractChannel, amqp_url: str, start_app: Callable[..., Awaitable[App]]
) -> None:
    queue = await bound_queue(channel, "warehouse", "newsletter.signup.#")
    connectors = dict(defaults()["connectors"])
    connectors["sink"] = {"kind": "amqp", "options": {"url": amqp_url, "exchange": EXCHANGE}}
    signup = defaults()["triggers"]["newsletter.signup"]
    publish = {"connector": "sink", "action": "events.publish"}
    triggers = {"newsletter.signup": {"steps": [*signup["steps"], publish]}}
    app = await start_app(connectors=connectors, triggers=triggers)
    async with Switchboard(f"127.0.0.1:{app.port}") as sb:
        run = await sb.campaigns.trigger(
            "newsletter.signup", email="ada@example.com", contact={"consent": True}, wait=True
        )

    assert run.status == campaigns_pb2.RUN_STATUS_SUCCEEDED
    message = await take(queue)
    step = len(signup["steps"])
    assert message.message_id == f"{run.id}:{step}"
    assert json.loads(message.body)["data"]["contact"]["email"] == "ada@example.com"


async def test_broker_restart_is_retryable_then_delivers(
    rabbit: RabbitMQServer, channel: AbstractChannel, sink: AmqpConnector, tmp_path: Path
) -> None:
    await bound_queue(channel, "durable-sink")
    await sink.invoke("events.publish", payload(), CTX)

    rabbit.stop()
    try:
        with pytest.raises(RetryableConnectorError):
            await sink.invoke("events.publish", payload(), InvokeContext(idempotency_key="r_1:3"))
    finally:
        rabbit.start()
    await sink.invoke("events.publish", payload(), InvokeContext(idempotency_key="r_1:4"))

    # A new consumer connection: the persistent message from before the restart is kept.
    connection = await aio_pika.connect(rabbit.url)
    try:
        queue = await (await connection.channel()).get_queue("durable-sink")
        ids = [(await take(queue)).message_id, (await take(queue)).message_id]
    finally:
        await connection.close()
    assert ids == ["r_1:2", "r_1:4"]
