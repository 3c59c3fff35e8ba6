"""The reference flows and contact sync on the real adapters, configured as in
examples/real-tools.toml.

The example file is loaded as `switchboard serve --config` loads it; only what must point
at this machine is overridden (the vendors' base URLs, the SES endpoint, the placeholder
audience and measurement ids). HubSpot and Mailchimp are contract servers, Segment and GA4
share one, SES is moto's emulator and the event queue a real RabbitMQ. Each test asserts on
what the fake vendors received.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aio_pika
import boto3
import httpx
import pytest
from aio_pika.abc import AbstractQueue
from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer
from moto.ses import ses_backends

from switchboard.client import Switchboard
from switchboard.server.app.build import App, build_app
from switchboard.server.config.settings import load_settings
from switchboard.v1 import campaigns_pb2
from tests.connectors.vendors import ga4_api, segment_api
from tests.connectors.vendors.contract import ContractServer
from tests.connectors.vendors.hubspot_server import FakeHubSpot
from tests.connectors.vendors.mailchimp_server import API_KEY, FakeMailchimp, md5
from tests.rabbitmq_server import RabbitMQServer, find_rabbitmq_server

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).parents[2] / "examples" / "real-tools.toml"
REGION = "eu-west-1"  # as in the example
SENDER = "news@example.com"
EXCHANGE = "marketing.events"
TOKEN = "pat-na1-real-tools"
OK = campaigns_pb2.RUN_STATUS_SUCCEEDED
DONE = (campaigns_pb2.RUN_STATUS_SUCCEEDED, campaigns_pb2.RUN_STATUS_FAILED)
EVERY_PURPOSE = {
    "email_marketing": True,
    "analytics": True,
    "personalization": True,
    "advertising": True,
}


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


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


class Tools:
    """The fake vendors one test's server talks to."""

    def __init__(self, hubspot: FakeHubSpot, mailchimp: FakeMailchimp, web: ContractServer):
        self.hubspot = hubspot
        self.mailchimp = mailchimp
        self.web = web  # Segment and GA4 routes on one contract server


@pytest.fixture
def ses(moto_url: str) -> str:
    """A clean SES emulator with the example's sender verified."""
    httpx.post(f"{moto_url}/moto-api/reset").raise_for_status()
    client = boto3.client(
        "sesv2",
        region_name=REGION,
        endpoint_url=moto_url,
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="secret-example",
    )
    client.create_email_identity(EmailIdentity=SENDER)
    return moto_url


@pytest.fixture
async def tools(
    monkeypatch: pytest.MonkeyPatch, rabbit: RabbitMQServer, ses: str
) -> AsyncIterator[Tools]:
    hubspot, mailchimp, web = FakeHubSpot(TOKEN), FakeMailchimp(), ContractServer()
    segment_api.install(web)
    ga4_api.install(web)
    for server in (hubspot, mailchimp, web):
        await server.start()
    secrets = {
        "HUBSPOT_ACCESS_TOKEN": TOKEN,
        "MAILCHIMP_API_KEY": API_KEY,
        "SEGMENT_WRITE_KEY": segment_api.WRITE_KEY,
        "GA4_API_SECRET": ga4_api.API_SECRET,
        "LOYALTY_CLIENT_SECRET": "unused-here",
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret-example",
        "AMQP_URL": rabbit.url,
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    try:
        yield Tools(hubspot, mailchimp, web)
    finally:
        await hubspot.stop()
        await mailchimp.stop()
        await web.close()


@pytest.fixture
async def app(tools: Tools, ses: str, tmp_path: Path) -> AsyncIterator[App]:
    local = {
        "hubspot": {"base_url": tools.hubspot.url},
        "mailchimp": {"base_url": tools.mailchimp.url, "list_id": "list1"},
        "segment": {"base_url": f"{tools.web.url}/v1"},
        "ga4": {"base_url": tools.web.url, "measurement_id": ga4_api.MEASUREMENT_ID},
        "ses": {"endpoint_url": ses},
    }
    settings = load_settings(
        EXAMPLE,
        listen="127.0.0.1:0",
        database={"path": str(tmp_path / "real-tools.db")},
        auth={"enabled": False},
        limits={"rate_per_s": 0},
        drain_period_s=0,
        connectors={name: {"options": options} for name, options in local.items()},
    )
    built = await build_app(settings)
    await built.start()
    try:
        yield built
    finally:
        await built.stop(grace_s=1.0)


@pytest.fixture
async def queue(rabbit: RabbitMQServer) -> AsyncIterator[AbstractQueue]:
    """A consumer of the example's exchange, as the warehouse or the automation runs one."""
    connection = await aio_pika.connect(rabbit.url)
    channel = await connection.channel()
    await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    declared = await channel.declare_queue("real-tools", durable=True)
    await declared.purge()
    await declared.bind(EXCHANGE, "#")
    try:
        yield declared
    finally:
        await declared.delete(if_unused=False, if_empty=False)
        await connection.close()


async def _message(queue: AbstractQueue) -> tuple[dict[str, Any], dict[str, Any]]:
    message = await queue.get(timeout=10, fail=True)
    assert message is not None
    await message.ack()
    return dict(message.headers), json.loads(message.body)


async def _finished(sb: Switchboard, contact_id: str, event: str) -> list[campaigns_pb2.Run]:
    async with asyncio.timeout(20):
        while True:
            runs = list((await sb.campaigns.list_runs(contact_id=contact_id, event=event)).runs)
            if runs and all(r.status in DONE for r in runs):
                return runs
            await asyncio.sleep(0.05)


def _client(app: App) -> Switchboard:
    return Switchboard(f"127.0.0.1:{app.port}", timeout=20.0)


def test_the_example_passes_config_check(tools: Tools) -> None:
    # The command a user runs, in its own process (the secrets come from the environment).
    cmd = [sys.executable, "-m", "switchboard.server.cli", "config", "check", str(EXAMPLE)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


async def test_newsletter_signup_reaches_hubspot_and_mailchimp(app: App, tools: Tools) -> None:
    async with _client(app) as sb:
        run = await sb.campaigns.trigger(
            "newsletter.signup",
            email="Signup@Example.com",
            contact={"first_name": "Sam", "consents": EVERY_PURPOSE},
            wait=True,
        )
    assert run.status == OK, run
    upsert, subscribe, offer = run.steps
    record = tools.hubspot.contacts["signup@example.com"]
    assert record["properties"]["firstname"] == "Sam"
    assert upsert.status == campaigns_pb2.STEP_STATUS_SUCCEEDED
    member = tools.mailchimp.members["list1"][md5("signup@example.com")]
    assert member["status"] == "pending"  # the example asks for double opt-in
    assert member["merge_fields"]["FNAME"] == "Sam"
    assert {"switchboard", "newsletter"} <= set(member["tags"])
    assert subscribe.status == campaigns_pb2.STEP_STATUS_SUCCEEDED
    assert offer.status == campaigns_pb2.STEP_STATUS_SUCCEEDED


async def test_lead_status_update_publishes_the_follow_up(app: App, queue: AbstractQueue) -> None:
    async with _client(app) as sb:
        created = await sb.contacts.upsert(email="lead@example.com", consents=EVERY_PURPOSE)
        answer = await sb.leads.update_status(id=created.contact.id, status="mql", reason="demo")
        [run] = await _finished(sb, created.contact.id, "lead.status_updated")
    assert run.id == answer.run_id
    assert run.status == OK, run
    assert [s.connector for s in run.steps] == ["scoring", "automation", "events"]
    headers, body = await _message(queue)
    assert body["event"] == "lead.status_updated"
    assert body["type"] == "events.publish"
    assert body["id"] == f"{run.id}:2"  # the step's idempotency key, for de-duplication
    assert body["data"]["contact"]["id"] == created.contact.id
    assert headers["event"] == "lead.status_updated"
    assert headers["schema"] == "switchboard.step"


async def test_purchase_reaches_ga4_and_segment(app: App, tools: Tools) -> None:
    async with _client(app) as sb:
        run = await sb.campaigns.trigger(
            "purchase.completed",
            email="buyer@example.com",
            contact={"consents": EVERY_PURPOSE},
            attributes={
                "order_id": "o-42",
                "amount": 59.5,
                "items": [{"sku": "tee", "item_id": "tee", "quantity": 2, "price": 29.75}],
            },
            wait=True,
        )
    assert run.status == OK, run
    assert [s.connector for s in run.steps] == ["crm", "recommendations", "ga4", "segment"]
    assert tools.web.violations == []
    [collect] = tools.web.calls("/mp/collect")
    assert collect.query["api_secret"] == ga4_api.API_SECRET
    [purchase] = collect.json()["events"]
    assert purchase["name"] == "purchase"
    assert purchase["params"]["transaction_id"] == "o-42"
    assert purchase["params"]["value"] == 59.5
    assert purchase["params"]["currency"] == "EUR"  # the example's default currency
    tracked = [
        e
        for seen in tools.web.calls("/v1/")
        for e in (seen.json().get("batch") or [seen.json()])
        if e.get("type", seen.path.rsplit("/", 1)[-1]) == "track"
    ]
    [order] = tracked
    assert order["event"] == "Order Completed"


async def test_welcome_email_goes_through_ses_and_the_queue(app: App, queue: AbstractQueue) -> None:
    async with _client(app) as sb:
        run = await sb.campaigns.trigger(
            "newsletter.welcome",
            email="welcome@example.com",
            contact={"first_name": "Wen", "consents": EVERY_PURPOSE},
            wait=True,
        )
    assert run.status == OK, run
    [sent] = ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
    assert sent.destinations["ToAddresses"] == ["welcome@example.com"]
    assert sent.subject == "Welcome, Wen"
    headers, body = await _message(queue)
    assert headers["event"] == "newsletter.welcome"
    assert body["data"]["contact"]["email"] == "welcome@example.com"


async def test_contact_sync_and_erasure_on_hubspot_mailchimp_and_segment(
    app: App, tools: Tools
) -> None:
    async with _client(app) as sb:
        created = await sb.contacts.upsert(
            email="Synced@Example.com", first_name="Syd", consents=EVERY_PURPOSE
        )
        contact_id = created.contact.id
        [synced] = await _finished(sb, contact_id, "contact.changed")
        assert synced.status == OK, synced
        assert [s.connector for s in synced.steps] == ["hubspot", "mailchimp", "segment"]
        assert tools.hubspot.contacts["synced@example.com"]["properties"]["firstname"] == "Syd"
        assert md5("synced@example.com") in tools.mailchimp.members["list1"]
        identified = [
            e
            for seen in tools.web.calls("/v1/")
            for e in (seen.json().get("batch") or [seen.json()])
            if e.get("type", seen.path.rsplit("/", 1)[-1]) == "identify"
        ]
        assert [e["userId"] for e in identified] == [contact_id]
        assert tools.web.violations == []

        await sb.contacts.delete(id=contact_id)
        [erased] = await _finished(sb, contact_id, "contact.erased")
    assert erased.status == OK, erased
    assert tools.hubspot.erased == ["synced@example.com"]
    assert tools.mailchimp.deleted == ["synced@example.com"]
    # Segment has no deletion call in the Tracking API: it is not part of the erasure.
    assert "segment" not in {s.connector for s in erased.steps}
