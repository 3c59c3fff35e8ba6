"""`SyncSwitchboard`: the asynchronous client run on a private event loop thread."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator, Mapping, Sequence
from types import TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar

from ._async import Switchboard
from ._campaigns import Campaigns
from ._config import ChannelOptions, TLSConfig, resolve_tls
from ._connectors import Connectors
from ._contacts import Contacts
from ._leads import Leads

__all__ = ["SyncSwitchboard"]

A = TypeVar("A")
P = ParamSpec("P")
T = TypeVar("T")


class _Portal:
    """An event loop on a daemon thread that runs coroutines for synchronous callers."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="switchboard-client", daemon=True
        )
        self._thread.start()

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._loop.is_closed()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Runs `coro` on the loop and returns its result, blocking the calling thread."""
        if self.closed:
            coro.close()
            raise RuntimeError("the client is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            # E.g. KeyboardInterrupt while waiting: stop the call instead of leaving it running.
            future.cancel()
            raise

    def iterate(self, agen: AsyncGenerator[T, None]) -> Generator[T, None, None]:
        """Iterates over `agen` on the loop; closing the iterator closes `agen`."""
        try:
            while True:
                try:
                    item = self.run(_anext(agen))
                except StopAsyncIteration:
                    return
                yield item
        finally:
            if not self.closed:
                self.run(agen.aclose())

    def close(self) -> None:
        """Finalizes pending async generators, then stops and closes the loop."""
        if self.closed:
            return
        self.run(self._loop.shutdown_asyncgens())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


async def _anext(agen: AsyncGenerator[T, None]) -> T:
    # `run_coroutine_threadsafe` takes coroutines only, which `agen.__anext__()` is not.
    return await agen.__anext__()


class _SyncNamespace(Generic[A]):
    def __init__(self, namespace: A, portal: _Portal) -> None:
        self._async = namespace
        self._portal = portal


def _blocking(
    method: Callable[Concatenate[A, P], Coroutine[Any, Any, T]],
) -> Callable[Concatenate[_SyncNamespace[A], P], T]:
    """Turns an async namespace method into a blocking one with the same parameters."""

    @functools.wraps(method)
    def call(self: _SyncNamespace[A], /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self._portal.run(method(self._async, *args, **kwargs))

    return call


def _blocking_iter(
    method: Callable[Concatenate[A, P], AsyncGenerator[T, None]],
) -> Callable[Concatenate[_SyncNamespace[A], P], Generator[T, None, None]]:
    """Turns an async-iterating namespace method into one returning a plain iterator."""

    @functools.wraps(method)
    def call(
        self: _SyncNamespace[A], /, *args: P.args, **kwargs: P.kwargs
    ) -> Generator[T, None, None]:
        return self._portal.iterate(method(self._async, *args, **kwargs))

    return call


class SyncContacts(_SyncNamespace[Contacts]):
    """Blocking `Contacts`: the same methods and arguments."""

    upsert = _blocking(Contacts.upsert)
    get = _blocking(Contacts.get)
    delete = _blocking(Contacts.delete)
    import_ = _blocking(Contacts.import_)
    list = _blocking(Contacts.list)
    iter = _blocking_iter(Contacts.iter)


class SyncLeads(_SyncNamespace[Leads]):
    """Blocking `Leads`: the same methods and arguments."""

    record_activity = _blocking(Leads.record_activity)
    score = _blocking(Leads.score)
    get = _blocking(Leads.get)
    update_status = _blocking(Leads.update_status)
    score_many = _blocking_iter(Leads.score_many)


class SyncCampaigns(_SyncNamespace[Campaigns]):
    """Blocking `Campaigns`: the same methods and arguments."""

    trigger = _blocking(Campaigns.trigger)
    get_run = _blocking(Campaigns.get_run)
    list_runs = _blocking(Campaigns.list_runs)
    iter_runs = _blocking_iter(Campaigns.iter_runs)
    list_triggers = _blocking(Campaigns.list_triggers)
    watch = _blocking_iter(Campaigns.watch)
    variant_results = _blocking(Campaigns.variant_results)


class SyncConnectors(_SyncNamespace[Connectors]):
    """Blocking `Connectors`: the same methods and arguments."""

    list = _blocking(Connectors.list)
    invoke = _blocking(Connectors.invoke)
    list_dead_letters = _blocking(Connectors.list_dead_letters)
    iter_dead_letters = _blocking_iter(Connectors.iter_dead_letters)
    redrive_dead_letters = _blocking(Connectors.redrive_dead_letters)
    backfill = _blocking_iter(Connectors.backfill)


class SyncSwitchboard:
    """Blocking client: `Switchboard` run on a private event loop in a background thread.

    It has the same namespaces, methods and arguments; async iterators become plain
    iterators. Iterables passed to `import_` and `score_many` are consumed on the client's
    thread. Close it (or use it as a context manager) to stop the thread.

    Example:
        ```python
        with SyncSwitchboard("localhost:50051") as sb:
            contact = sb.contacts.get(email="ada@example.com")
        ```

    Args are those of `Switchboard`, except `channel` (a channel belongs to one event loop).
    """

    def __init__(
        self,
        target: str,
        *,
        api_key: str | None = None,
        metadata: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        timeout: float | None = 10.0,
        retries: int = 3,
        tls: bool | TLSConfig = False,
        root_certificates: bytes | None = None,
        client_cert_chain: bytes | None = None,
        client_private_key: bytes | None = None,
        options: ChannelOptions = (),
    ) -> None:
        # Resolved here, so a deprecation warning points at the caller's line.
        tls_config = resolve_tls(tls, root_certificates, client_cert_chain, client_private_key)

        async def connect() -> Switchboard:
            # A grpc.aio channel belongs to the loop it is created on: create it there.
            return Switchboard(
                target,
                api_key=api_key,
                metadata=metadata,
                timeout=timeout,
                retries=retries,
                tls=tls_config or False,
                options=options,
            )

        self._portal = _Portal()
        try:
            self._client = self._portal.run(connect())
        except BaseException:
            self._portal.close()
            raise
        self.contacts = SyncContacts(self._client.contacts, self._portal)
        self.leads = SyncLeads(self._client.leads, self._portal)
        self.campaigns = SyncCampaigns(self._client.campaigns, self._portal)
        self.connectors = SyncConnectors(self._client.connectors, self._portal)

    def close(self) -> None:
        """Closes the channel and stops the background thread; safe to call twice."""
        if self._portal.closed:
            return
        try:
            self._portal.run(self._client.aclose())
        finally:
            self._portal.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
