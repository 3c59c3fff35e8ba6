"""`ConnectorState` for built-in adapters, kept in the store's own database."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from switchboard.server.connectors.base import StateTx

if TYPE_CHECKING:
    from switchboard.server.store.base import Store, WriteTx

T = TypeVar("T")

#: A contact id as `new_id("c")` makes it: the key of the tools' records about one person.
_CONTACT_ID = re.compile(r"c_[0-9A-Z]{26}")


def _erased(tx: WriteTx, key: str) -> bool:
    """Whether `key` names an erased person (their tombstone, kept by the erasure).

    A delivery that was already on its way when the person was erased must not write the
    embedded tool's record of them back after the erasure deleted it: the check runs in
    the same write transaction as the put, so it cannot miss an erasure.
    """
    return _CONTACT_ID.fullmatch(key) is not None and tx.tombstone_by_id(key) is not None


def _put(tx: WriteTx, connector: str, collection: str, key: str, value: dict[str, Any]) -> None:
    if not _erased(tx, key):
        tx.state_put(connector, collection, key, value)


class StoreConnectorState:
    """Key/value state scoped to one connector; each call is its own transaction."""

    def __init__(self, store: Store, connector: str) -> None:
        self._store = store
        self._connector = connector

    async def transaction(self, fn: Callable[[StateTx], T]) -> T:
        """Run `fn` inside one store write transaction (see `ConnectorState.transaction`).

        The store's single writer runs one job at a time under the database write lock
        (other processes wait for it too), so reads in `fn` see no concurrent change, and
        `fn`'s writes commit together.
        """
        name = self._connector
        return await self._store.write(lambda tx: fn(_TxState(tx, name)))

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """Return the stored value or None."""
        name = self._connector
        return await self._store.read(lambda tx: tx.state_get(name, collection, key))

    async def put(self, collection: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace a value (not when `key` is the id of an erased contact)."""
        name = self._connector
        await self._store.write(lambda tx: _put(tx, name, collection, key, value))

    async def delete(self, collection: str, key: str) -> bool:
        """Remove a value; return whether it existed."""
        name = self._connector
        return await self._store.write(lambda tx: tx.state_delete(name, collection, key))

    async def scan(
        self, collection: str, prefix: str = "", limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Values whose key starts with `prefix`, in key order."""
        name = self._connector
        return await self._store.read(lambda tx: tx.state_scan(name, collection, prefix, limit))


class _TxState:
    """`StateTx` over an open store transaction, scoped to one connector."""

    __slots__ = ("_connector", "_tx")

    def __init__(self, tx: WriteTx, connector: str) -> None:
        self._tx = tx
        self._connector = connector

    def get(self, collection: str, key: str) -> dict[str, Any] | None:
        return self._tx.state_get(self._connector, collection, key)

    def put(self, collection: str, key: str, value: dict[str, Any]) -> None:
        _put(self._tx, self._connector, collection, key, value)

    def delete(self, collection: str, key: str) -> bool:
        return self._tx.state_delete(self._connector, collection, key)
