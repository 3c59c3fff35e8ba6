"""In-process fakes of the Switchboard services for your own tests.

`FakeSwitchboard` serves ContactSync, LeadScoring, CampaignTriggers and Connectors on a real
`grpc.aio` server on a free loopback port, with in-memory behaviour: contacts are stored and
merged, leads gain points per activity, a triggered run's steps all succeed at once, and
every call is recorded. Your code talks to it through the real client, as in production;
you then assert on what it holds and what it received, or make a method fail on purpose.

```python
from switchboard.client.testing import FakeSwitchboard

async def test_signup_syncs_the_contact() -> None:
    async with FakeSwitchboard() as fake, fake.client() as sb:
        await my_service.sign_up(sb, "ada@example.com")   # your code under test
    [run] = fake.runs.values()
    assert run.event == "newsletter.signup"
    assert fake.requests("UpsertContact") == []           # it used the trigger only
```

Synchronous tests use it as a plain context manager (it then runs on its own thread) with
`fake.sync_client()`. `fake.fail("GetContact", grpc.StatusCode.UNAVAILABLE)` makes the next
call of that method fail with that status.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import grpc

from switchboard.v1 import campaigns_pb2, connectors_pb2, contacts_pb2, leads_pb2

from .._async import Switchboard
from .._sync import SyncSwitchboard
from ._services import Gate, add_services
from ._state import Call, Refusal, State

__all__ = ["DEFAULT_TRIGGERS", "Call", "FakeSwitchboard"]

#: The fake's triggers unless given others: event → (connector, action) steps, as the
#: server's default settings configure them.
DEFAULT_TRIGGERS: Mapping[str, Sequence[tuple[str, str]]] = {
    "newsletter.signup": (
        ("crm", "contacts.upsert"),
        ("esp", "lists.subscribe"),
        ("personalization", "offers.show"),
    ),
    "lead.status_updated": (("scoring", "leads.score"), ("automation", "followups.start")),
    "purchase.completed": (
        ("crm", "purchases.record"),
        ("recommendations", "suggestions.refresh"),
        ("analytics", "conversions.track"),
    ),
}


class FakeSwitchboard:
    """A Switchboard server in memory, on `127.0.0.1:<free port>`, for tests.

    Args:
        api_key: When given, calls must send it (`authorization: Bearer KEY`), else
            UNAUTHENTICATED, as against a real server.
        triggers: Event → steps as `(connector, action)` pairs; `DEFAULT_TRIGGERS` by
            default. The connectors are those the steps name.

    Attributes:
        contacts: The stored contacts by id.
        leads: The leads by contact id.
        runs: The runs by id, in the order they started.
        dead_letters: Dead letters to list and redrive; empty unless a test adds some.
        invocations: The `InvokeConnector` requests that reached a connector.
        calls: Every call received, in order (method name, request, metadata).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        triggers: Mapping[str, Sequence[tuple[str, str]]] | None = None,
    ) -> None:
        chosen = DEFAULT_TRIGGERS if triggers is None else triggers
        self._state = State({event: list(steps) for event, steps in chosen.items()})
        self._gate = Gate(self._state, api_key)
        self._api_key = api_key
        self._server: grpc.aio.Server | None = None
        self._port = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # What tests read --------------------------------------------------------------------

    @property
    def contacts(self) -> dict[str, contacts_pb2.Contact]:
        return self._state.contacts

    @property
    def leads(self) -> dict[str, leads_pb2.Lead]:
        return self._state.leads

    @property
    def runs(self) -> dict[str, campaigns_pb2.Run]:
        return self._state.runs

    @property
    def dead_letters(self) -> list[connectors_pb2.DeadLetter]:
        return self._state.dead_letters

    @property
    def invocations(self) -> list[connectors_pb2.InvokeConnectorRequest]:
        return self._state.invocations

    @property
    def calls(self) -> list[Call]:
        return self._state.calls

    def requests(self, method: str) -> list[Any]:
        """The requests `method` (e.g. `"UpsertContact"`) received, oldest first.

        A client-streaming method's entry is the list of messages of one call.
        """
        return [call.request for call in self._state.calls if call.method == method]

    def contact(self, email: str) -> contacts_pb2.Contact | None:
        """The stored contact with this email, if any."""
        return self._state.find("", email)

    def fail(
        self,
        method: str,
        code: grpc.StatusCode,
        message: str = "failure injected by FakeSwitchboard",
        *,
        times: int = 1,
    ) -> None:
        """Makes the next `times` calls of `method` fail with `code` and `message`."""
        self._gate.failures.setdefault(method, []).extend(
            Refusal(code, message) for _ in range(times)
        )

    # Lifecycle --------------------------------------------------------------------------

    @property
    def target(self) -> str:
        """`127.0.0.1:PORT` of the running fake."""
        if self._server is None:
            raise RuntimeError("the fake is not started: use `async with` or `with`")
        return f"127.0.0.1:{self._port}"

    async def start(self) -> str:
        """Starts serving on a free loopback port; returns the target."""
        server = grpc.aio.server()
        add_services(server, self._gate)
        self._port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        self._server = server
        return self.target

    async def aclose(self) -> None:
        """Stops the server, cancelling calls in progress."""
        if self._server is not None:
            await self._server.stop(None)
            self._server = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __enter__(self) -> Self:
        # A grpc.aio server needs a running loop: give it one on a thread of its own.
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fake-switchboard", daemon=True
        )
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.start(), self._loop).result()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._loop is None or self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self.aclose(), self._loop).result()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._loop, self._thread = None, None

    # Clients ----------------------------------------------------------------------------

    def client(self, **kwargs: Any) -> Switchboard:
        """A `Switchboard` client for the fake (with its API key); use it with `async with`."""
        kwargs.setdefault("api_key", self._api_key)
        return Switchboard(self.target, **kwargs)

    def sync_client(self, **kwargs: Any) -> SyncSwitchboard:
        """A `SyncSwitchboard` for the fake (with its API key); use it with `with`."""
        kwargs.setdefault("api_key", self._api_key)
        return SyncSwitchboard(self.target, **kwargs)


# Present the public names as members of this module (in reprs, docs and tracebacks).
Call.__module__ = __name__
