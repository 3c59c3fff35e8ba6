"""The blocking client, against a server running on its own thread."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from switchboard.client import NotFoundError, SyncSwitchboard
from switchboard.v1 import campaigns_pb2, contacts_pb2

from .conftest import API_KEY
from .fakes import Backend


@pytest.fixture
def sync_sb(threaded_address: str) -> Iterator[SyncSwitchboard]:
    with SyncSwitchboard(threaded_address, api_key=API_KEY) as client:
        yield client


def test_unary_call(sync_sb: SyncSwitchboard, backend: Backend) -> None:
    reply = sync_sb.contacts.upsert(email="ada@example.com", lists=["newsletter"])

    request = backend.last("UpsertContact")
    assert request.contact == contacts_pb2.Contact(email="ada@example.com", lists=["newsletter"])
    assert request.idempotency_key
    assert backend.received[-1].metadata["authorization"] == f"Bearer {API_KEY}"
    assert reply.created


def test_server_stream_is_a_plain_iterator(sync_sb: SyncSwitchboard) -> None:
    statuses = [run.status for run in sync_sb.campaigns.watch("r_1")]

    assert statuses == [
        campaigns_pb2.RUN_STATUS_PENDING,
        campaigns_pb2.RUN_STATUS_RUNNING,
        campaigns_pb2.RUN_STATUS_SUCCEEDED,
    ]


def test_pagination_and_bidi_streams(sync_sb: SyncSwitchboard) -> None:
    ids = [contact.id for contact in sync_sb.contacts.iter(page_size=2)]
    scored = [reply.lead.contact_id for reply in sync_sb.leads.score_many(["c_1", "c_2"])]

    assert ids == ["c_0", "c_1", "c_2", "c_3", "c_4"]
    assert scored == ["c_1", "c_2"]


def test_errors_are_raised_in_the_calling_thread(
    sync_sb: SyncSwitchboard, backend: Backend
) -> None:
    async def missing(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.NOT_FOUND, "no such contact")

    backend.before["GetContact"] = missing

    with pytest.raises(NotFoundError, match="no such contact"):
        sync_sb.contacts.get(id="c_404")


def test_stopping_an_iterator_early_is_clean(sync_sb: SyncSwitchboard) -> None:
    runs = sync_sb.campaigns.watch("r_1")

    first = next(runs)
    runs.close()

    assert first.status == campaigns_pb2.RUN_STATUS_PENDING
    assert sync_sb.connectors.list()[0].name == "fake"  # the client is still usable


def test_close_is_idempotent_and_final(threaded_address: str) -> None:
    sb = SyncSwitchboard(threaded_address)
    sb.close()
    sb.close()

    with pytest.raises(RuntimeError, match="closed"):
        sb.contacts.get(id="c_1")
