"""`ConnectorState` for built-in adapters, kept in the store's own database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from switchboard.server.store.base import Store


class StoreConnectorState:
    """Key/value state scoped to one connector; each call is its own transaction."""

    def __init__(self, store: Store, connector: str) -> None:
        self._store = store
        self._connector = connector

    async def get(self, collection: str, key: str) -> dict[str, Any] | None:
        """Return the stored value or None."""
        name = self._connector
        return await self._store.read(lambda tx: tx.state_get(name, collection, key))

    async def put(self, collection: str, key: str, value: dict[str, Any]) -> None:
        """Insert or replace a value."""
        name = self._connector
        await self._store.write(lambda tx: tx.state_put(name, collection, key, value))

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
