from __future__ import annotations

from google.protobuf import json_format

from switchboard.client import Switchboard
from switchboard.v1 import connectors_pb2

from .fakes import Backend


async def test_list_returns_the_connectors(sb: Switchboard) -> None:
    connectors = await sb.connectors.list()

    assert [(c.name, list(c.actions)) for c in connectors] == [("fake", ["echo"])]
    assert connectors[0].health == connectors_pb2.CONNECTOR_HEALTH_SERVING


async def test_invoke_sends_the_payload_and_returns_the_result(
    sb: Switchboard, backend: Backend
) -> None:
    result = await sb.connectors.invoke(
        "fake", "echo", payload={"n": 1, "tags": ["x"]}, idempotency_key="my-key"
    )

    request = backend.last("InvokeConnector")
    assert (request.connector, request.action) == ("fake", "echo")
    assert request.idempotency_key == "my-key"
    assert json_format.MessageToDict(result) == {"n": 1.0, "tags": ["x"]}
