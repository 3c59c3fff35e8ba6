"""Spans carry no personal data: emails and phone numbers are masked before any exporter
sees them, as in log lines (issue 14, defect 6)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Awaitable, Callable

import pytest
from opentelemetry.sdk.trace import ReadableSpan

from switchboard.client import InvalidArgumentError, NotFoundError, Switchboard, SwitchboardError
from switchboard.server.app.build import App
from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.errors import PermanentConnectorError
from tests.observability.conftest import Observed, eventually

EMAIL = "bart.o@example.com"
PHONE = "0044 20 7946 0958"  # not E.164: refused, and quoted in the error message

StartApp = Callable[..., Awaitable[App]]


def _everything_exported(span: ReadableSpan) -> str:
    """Every string an exporter would print for `span`, as one text."""
    return json.dumps(
        {
            "name": span.name,
            "attributes": dict(span.attributes or {}),
            "status": span.status.description,
            "events": [(e.name, dict(e.attributes or {})) for e in span.events],
            "links": [dict(link.attributes or {}) for link in span.links],
        },
        default=str,
    )


async def _calls_that_quote_personal_data(sb: Switchboard) -> None:
    with contextlib.suppress(NotFoundError):
        await sb.contacts.get(email=EMAIL)
    with contextlib.suppress(InvalidArgumentError):
        await sb.contacts.upsert(email="ada@example.com", phone=PHONE)


async def test_console_exporter_prints_no_email_or_phone(
    start_app: StartApp, capsys: pytest.CaptureFixture[str]
) -> None:
    app = await start_app(telemetry={"exporter": "console"})
    async with Switchboard(f"127.0.0.1:{app.port}", timeout=5.0) as sb:
        await _calls_that_quote_personal_data(sb)
    await app.stop(grace_s=1.0)  # flushes the exporter
    out = capsys.readouterr().out
    assert ("ContactSync/GetContact" in out, EMAIL in out, PHONE in out) == (True, False, False)


async def test_no_span_attribute_or_event_holds_an_email_or_phone(observed: Observed) -> None:
    fake = observed.app.connectors["fake"]
    assert isinstance(fake, FakeConnector)
    # An adapter's error quoting the person: it lands in the attempt span's exception event
    # (message and stack trace) and status description.
    fake.script("echo", PermanentConnectorError(f"the tool refused {EMAIL} / {PHONE}"))
    with contextlib.suppress(SwitchboardError):
        await observed.sb.connectors.invoke("fake", "echo", payload={"email": EMAIL})
    await _calls_that_quote_personal_data(observed.sb)
    spans = await eventually(
        observed.spans.get_finished_spans,
        lambda found: any(s.name.endswith("UpsertContact") for s in found),
    )
    (attempt,) = [s for s in spans if s.name == "connector fake echo"]
    exported = [_everything_exported(s) for s in spans]
    assert (
        "b***@example.com" in _everything_exported(attempt),
        [text for text in exported if EMAIL in text or PHONE in text],
    ) == (True, [])
