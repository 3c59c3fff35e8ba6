"""One contract server per test, with the vendor's documented routes installed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.connectors.vendors import ga4_api, segment_api
from tests.connectors.vendors.contract import ContractServer
from tests.connectors.vendors.rest_api import RestTool


@pytest.fixture
async def contract() -> AsyncIterator[ContractServer]:
    server = ContractServer()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def segment_server(contract: ContractServer, monkeypatch: pytest.MonkeyPatch) -> ContractServer:
    monkeypatch.setenv("SEGMENT_WRITE_KEY", segment_api.WRITE_KEY)
    segment_api.install(contract)
    return contract


@pytest.fixture
def ga4_server(contract: ContractServer, monkeypatch: pytest.MonkeyPatch) -> ContractServer:
    monkeypatch.setenv("GA4_API_SECRET", ga4_api.API_SECRET)
    ga4_api.install(contract)
    return contract


@pytest.fixture
def rest_tool(contract: ContractServer, monkeypatch: pytest.MonkeyPatch) -> RestTool:
    monkeypatch.setenv("CRM_CLIENT_SECRET", "sb-secret")
    monkeypatch.setenv("CRM_REFRESH_TOKEN", "rt-0")
    monkeypatch.setenv("CRM_API_KEY", "key-123")
    return RestTool(contract)
