from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import pytest

from switchboard.client import Switchboard

from .fakes import Backend, start_server

API_KEY = "sk_test_123"


@pytest.fixture
def backend() -> Backend:
    return Backend()


@pytest.fixture
async def address(backend: Backend) -> AsyncIterator[str]:
    """A server with the fake servicers, on the test's event loop."""
    server, address = await start_server(backend)
    yield address
    await server.stop(None)


@pytest.fixture
async def sb(address: str) -> AsyncIterator[Switchboard]:
    async with Switchboard(address, api_key=API_KEY, metadata={"X-Tenant": "acme"}) as client:
        yield client


@pytest.fixture
def threaded_address(backend: Backend) -> Iterator[str]:
    """A server with the fake servicers on its own loop and thread, for blocking clients."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server, address = asyncio.run_coroutine_threadsafe(start_server(backend), loop).result()
    yield address
    asyncio.run_coroutine_threadsafe(server.stop(None), loop).result()
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    loop.close()
