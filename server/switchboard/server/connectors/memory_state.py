"""`ConnectorState` held in dictionaries, for tests, the fake adapter and local trials."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TypeVar

from switchboard.server.connectors.base import JsonDict, StateTx

T = TypeVar("T")


class InMemoryState:
    """A `ConnectorState` in process memory.

    Values are deep-copied on the way in and out, as a real store would serialize them, so a
    caller mutating a value it passed or received cannot change what is stored.
    """

    def __init__(self) -> None:
        self._collections: dict[str, dict[str, JsonDict]] = {}

    async def transaction(self, fn: Callable[[StateTx], T]) -> T:
        """Run `fn` on a staged view; its writes land together once it returns.

        Atomic without a lock: `fn` is synchronous, so no other task runs until it is done.
        """
        staged = _Staged(self._collections)
        result = fn(staged)
        for (collection, key), value in staged.writes.items():
            if value is None:
                self._collections.get(collection, {}).pop(key, None)
            else:
                self._collections.setdefault(collection, {})[key] = value
        return result

    async def get(self, collection: str, key: str) -> JsonDict | None:
        """Return a copy of the stored value or None."""
        value = self._collections.get(collection, {}).get(key)
        return copy.deepcopy(value) if value is not None else None

    async def put(self, collection: str, key: str, value: JsonDict) -> None:
        """Insert or replace a value."""
        self._collections.setdefault(collection, {})[key] = copy.deepcopy(value)

    async def delete(self, collection: str, key: str) -> bool:
        """Remove a value; return whether it existed."""
        return self._collections.get(collection, {}).pop(key, None) is not None

    async def scan(self, collection: str, prefix: str = "", limit: int = 1000) -> list[JsonDict]:
        """Copies of the values whose key starts with `prefix`, in key order, at most `limit`."""
        items = self._collections.get(collection, {})
        keys = sorted(k for k in items if k.startswith(prefix))[: max(0, limit)]
        return [copy.deepcopy(items[k]) for k in keys]


class _Staged:
    """A `StateTx` that reads through its own pending writes (None marks a delete)."""

    def __init__(self, collections: dict[str, dict[str, JsonDict]]) -> None:
        self._collections = collections
        self.writes: dict[tuple[str, str], JsonDict | None] = {}

    def get(self, collection: str, key: str) -> JsonDict | None:
        if (collection, key) in self.writes:
            value = self.writes[(collection, key)]
        else:
            value = self._collections.get(collection, {}).get(key)
        return copy.deepcopy(value) if value is not None else None

    def put(self, collection: str, key: str, value: JsonDict) -> None:
        self.writes[(collection, key)] = copy.deepcopy(value)

    def delete(self, collection: str, key: str) -> bool:
        existed = self.get(collection, key) is not None
        self.writes[(collection, key)] = None
        return existed
