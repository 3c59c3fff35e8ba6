"""A span per RPC with rpc.* attributes, child spans per store transaction and connector
attempt, and trace context from the caller's traceparent on to connectors."""

from __future__ import annotations

import contextlib

from opentelemetry import trace
from opentelemetry.propagate import extract

from switchboard.client import ContactFields, NotFoundError, SwitchboardError
from switchboard.server.connectors.fake import FakeConnector
from switchboard.server.dispatch.attempts import AttemptTelemetry
from tests.observability.conftest import Observed, eventually

UPSERT = "switchboard.v1.ContactSync/UpsertContact"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
# Consent to every purpose the signup's steps serve, so that each one is delivered.
CONSENTED: ContactFields = {"consent": True, "consents": {"personalization": True}}


async def test_rpc_span_follows_the_current_rpc_conventions(observed: Observed) -> None:
    await observed.sb.contacts.upsert(email="ada@example.com")
    (span,) = await eventually(lambda: observed.finished(UPSERT))
    attrs = dict(span.attributes or {})
    keys = (
        "rpc.system.name",
        "rpc.method",
        "rpc.response.status_code",
        "server.port",
        "server.address",
        "client.address",
    )
    assert (span.kind, {k: attrs.get(k) for k in keys}, span.status.status_code) == (
        trace.SpanKind.SERVER,
        {
            "rpc.system.name": "grpc",
            "rpc.method": UPSERT,
            "rpc.response.status_code": "OK",
            "server.port": observed.app.port,
            "server.address": "127.0.0.1",
            "client.address": "127.0.0.1",
        },
        trace.StatusCode.UNSET,
    )
    assert isinstance(attrs["client.port"], int)
    # The pre-1.38 names are gone.
    assert not {"rpc.system", "rpc.service", "rpc.grpc.status_code", "net.peer.ip"} & set(attrs)


async def test_client_error_is_no_server_error(observed: Observed) -> None:
    with contextlib.suppress(NotFoundError):
        await observed.sb.contacts.get(email="nobody@example.com")
    (span,) = await eventually(lambda: observed.finished("switchboard.v1.ContactSync/GetContact"))
    attrs = dict(span.attributes or {})
    # NOT_FOUND is the caller's problem: the server span's status stays unset, no error.type.
    assert (attrs["rpc.response.status_code"], "error.type" in attrs, span.status.status_code) == (
        "NOT_FOUND",
        False,
        trace.StatusCode.UNSET,
    )


async def test_server_failure_sets_error_status_and_error_type(observed: Observed) -> None:
    fake = observed.app.connectors["fake"]
    assert isinstance(fake, FakeConnector)
    fake.script("echo", RuntimeError("bug in an adapter"))  # answered UNAVAILABLE
    with contextlib.suppress(SwitchboardError):
        await observed.sb.connectors.invoke("fake", "echo", payload={})
    spans = await eventually(lambda: observed.finished("switchboard.v1.Connectors/InvokeConnector"))
    # The client retries UNAVAILABLE; the adapter's script has one failure, then echoes.
    failed, *_ = sorted(spans, key=lambda s: s.start_time or 0)
    attrs = dict(failed.attributes or {})
    assert (
        attrs["rpc.response.status_code"],
        attrs.get("error.type"),
        failed.status.status_code,
        failed.status.description,
    ) == ("UNAVAILABLE", "UNAVAILABLE", trace.StatusCode.ERROR, "UNAVAILABLE")


async def test_store_transactions_are_child_spans_of_the_rpc(observed: Observed) -> None:
    await observed.sb.contacts.upsert(email="ada@example.com")
    (rpc,) = await eventually(lambda: observed.finished(UPSERT))
    writes = [s for s in observed.finished("store.write") if s.parent is not None]
    children = [s for s in writes if s.parent and s.parent.span_id == rpc.context.span_id]
    assert children


async def test_caller_traceparent_is_continued(observed: Observed) -> None:
    async with observed.sb.__class__(
        f"127.0.0.1:{observed.app.port}", metadata={"traceparent": PARENT}, timeout=10.0
    ) as sb:
        await sb.connectors.invoke("fake", "echo", payload={"hello": "world"})
    (rpc,) = await eventually(
        lambda: observed.finished("switchboard.v1.Connectors/InvokeConnector")
    )
    (attempt,) = observed.finished("connector fake echo")
    assert (
        format(rpc.context.trace_id, "032x"),
        attempt.parent.span_id if attempt.parent else None,
        attempt.context.trace_id,
    ) == (TRACE_ID, rpc.context.span_id, rpc.context.trace_id)


async def test_dispatched_steps_get_connector_spans(observed: Observed) -> None:
    await observed.sb.campaigns.trigger(
        "newsletter.signup", email="ada@example.com", contact=CONSENTED, wait=True
    )
    names = {s.name for s in observed.spans.get_finished_spans()}
    # The embedded CRM has a batch upsert: its step goes out as a batch call.
    assert {"connector crm contacts.upsert batch", "connector esp lists.subscribe"} <= names


async def test_connector_metadata_carries_the_attempt_span(observed: Observed) -> None:
    attempts = AttemptTelemetry(observed.app.telemetry.tracer, observed.app.telemetry.meter)
    async with attempts.attempt("crm", "contacts.upsert") as metadata:
        current = trace.get_current_span().get_span_context()
    received = trace.get_current_span(extract(metadata)).get_span_context()
    assert (received.trace_id, received.span_id) == (current.trace_id, current.span_id)
