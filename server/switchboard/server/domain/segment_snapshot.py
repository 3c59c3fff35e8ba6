"""An in-memory column snapshot of `segment_facts`, kept per server process, for counts.

Counting a segment in SQL reads every row an unindexed condition touches (a full scan at
1M contacts) or probes the read model once per list member; over numpy columns the same
count is a few vectorised passes. The snapshot loads once (in chunks, by contact id), then
before every count catches up with the rows changed since its watermark: triggers append
each written contact id to `segment_facts_log` (whoever wrote it), the snapshot re-reads
those rows, and a contact whose row is gone (erased) is dropped. A count therefore sees
every write committed before it started. PostgreSQL may commit sequence numbers out of
order, so there the snapshot also re-reads a window of changes behind its watermark.

Free-form attribute keys get columns on demand (domain/segment_attributes.py): the first
count naming a key reads every row's attributes once; after that the catch-up re-reads
the attributes of changed contacts along with their other columns.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from switchboard.server.domain.segment_attributes import (
    AttributeColumns,
    TooManyValues,
    decode_many,
)
from switchboard.server.domain.segment_slots import SlotIndex
from switchboard.server.rules.segment_expr import Bool, Cmp, In, Lit, Node, Not
from switchboard.server.rules.segment_fields import Kind
from switchboard.server.rules.segment_vec import Mask, attribute_keys, evaluate
from switchboard.server.store.base import ReadTx, Store
from switchboard.server.store.facts import SNAPSHOT_COLUMNS

_STRINGS = ("country", "lead_grade", "lead_status")
_SMALL = ("consent_", "cart_without_order")  # 0/1 columns, a byte each
_FLOATS = ("amount_", "average_basket")
_COUNTS = ("purchases_", "lead_score", "list_count", "attribute_count")  # int32 is plenty
_CHUNK = 50_000  # rows per read while loading
_IDS_PER_QUERY = 500  # contact ids per `IN (...)` while catching up
_LOG_PAGE = 10_000
_LOG_KEEP = 200_000  # changes kept behind the newest; a snapshot further behind reloads


def _dtype(column: str) -> Any:
    if column in _STRINGS or column.startswith(_COUNTS):
        return np.int32
    if column.startswith(_SMALL):
        return np.int8
    if column.startswith(_FLOATS):
        return np.float64
    return np.int64


def _log_after(tx: ReadTx, after: int) -> list[tuple[int, str]]:
    return tx.facts_log_after(after, _LOG_PAGE)


def _chunk(tx: ReadTx, after: str) -> list[tuple[Any, ...]]:
    return tx.facts_chunk(after, _CHUNK)


def _facts_of(tx: ReadTx, ids: list[str]) -> list[tuple[Any, ...]]:
    return tx.facts_of(ids)


def _attributes_chunk(tx: ReadTx, after: str) -> list[tuple[str, Any]]:
    return tx.facts_attributes_chunk(after, _CHUNK)


def _attributes_of(tx: ReadTx, ids: list[str]) -> list[tuple[str, Any]]:
    return tx.facts_attributes_of(ids)


def list_names(node: Node) -> set[str]:
    """The list names an expression tests (`"vip" in lists`)."""
    if isinstance(node, (Bool, Cmp)):
        return list_names(node.left) | list_names(node.right)
    if isinstance(node, Not):
        return list_names(node.arg)
    if isinstance(node, In) and not isinstance(node.container, tuple):
        if node.container.field.kind != Kind.STRING_LIST:
            return set()
        return {str(node.item.value)} if isinstance(node.item, Lit) else set()
    return set()


class FactsSnapshot:
    """The columns of every live contact's read-model row (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        reorder_window: int = 0,
        attributes: AttributeColumns | None = None,
    ) -> None:
        self._store = store
        self.attributes = attributes if attributes is not None else AttributeColumns()
        self._reorder = reorder_window
        self._lock = asyncio.Lock()
        self._seq = -1  # the last change applied; -1 before the first load
        self._n = 0
        self._slots = SlotIndex()
        self._cols: dict[str, npt.NDArray[Any]] = {}
        self._vocab: dict[str, dict[str, int]] = {c: {} for c in _STRINGS}
        self._lists: dict[str, Mask] = {}
        self._alive: Mask = np.zeros(0, dtype=np.bool_)

    # -- Columns (rules/segment_vec.py) ------------------------------------------------------
    @property
    def size(self) -> int:
        """Slots in use (erased contacts keep theirs, marked dead)."""
        return self._n

    def numbers(self, column: str) -> npt.NDArray[Any]:
        """A numeric column."""
        return self._cols[column][: self._n]

    def strings(self, column: str) -> tuple[npt.NDArray[np.int32], Sequence[str]]:
        """A string column's codes and vocabulary."""
        return self._cols[column][: self._n], list(self._vocab[column])

    def listed(self, name: str) -> Mask:
        """Membership of one list (loaded by `count` before evaluating)."""
        return self._lists[name][: self._n]

    def attribute(self, key: str) -> tuple[npt.NDArray[np.int32], list[str], dict[str, int]]:
        """One attribute key's column (loaded by `count` before evaluating)."""
        return self.attributes.column(key, self._n)

    # -- counting ----------------------------------------------------------------------------
    async def count(self, node: Node) -> int | None:
        """How many live contacts `node` selects, after catching up with committed writes.

        None when an attribute key it reads is not held (too many keys at once, or too
        many distinct values): the caller counts in SQL.
        """
        async with self._lock:
            mask = await self._select(node)
            return None if mask is None else int(np.count_nonzero(mask))

    async def member_ids(self, node: Node, after: str, limit: int) -> list[str] | None:
        """Up to `limit` ids of live contacts `node` selects after `after`, by id.

        None as for `count`.
        """
        async with self._lock:
            mask = await self._select(node)
            if mask is None:
                return None
            slots = np.flatnonzero(mask)
            index = self._slots
            if index.all_ordered():
                start = index.first_after(after)
                picked = slots[np.searchsorted(slots, start) :][:limit]
                return [index.id_at(s) for s in picked.tolist()]
            ids = (index.id_at(s) for s in slots.tolist())
            return heapq.nsmallest(limit, (cid for cid in ids if cid > after))

    async def _select(self, node: Node) -> Mask | None:
        await self._catch_up()
        for name in list_names(node) - set(self._lists):
            await self._load_list(name)
        keys = attribute_keys(node)
        if keys and not await self._hold(keys):
            return None
        return evaluate(node, self) & self._alive[: self._n]

    async def _hold(self, keys: set[str]) -> bool:
        held = self.attributes
        if held.refused(keys) or not held.make_room(keys):
            return False
        missing = keys - held.keys
        if not missing:
            return True
        held.start(missing, len(self._alive))
        after = ""
        built = False
        try:
            while True:
                rows = await self._store.read(functools.partial(_attributes_chunk, after=after))
                if not rows:
                    break
                # Rows written since the catch-up and not yet known wait for the next one.
                held.fill(missing, *self._attributes_at(rows), building=True)
                after = rows[-1][0]
            built = True
        except TooManyValues:
            return False
        finally:
            if not built:  # a half-built column (too wide, a failed read, a cancel) must go
                for key in missing & held.keys:
                    held.clear_key(key)
        return True

    async def _catch_up(self) -> None:
        oldest, newest = await self._store.read(lambda tx: tx.facts_log_bounds(), point=True)
        if self._seq < 0 or (newest > self._seq and oldest > self._seq + 1):
            await self._load(newest)
            return
        after = max(self._seq - self._reorder, 0) if self._reorder else self._seq
        while True:
            page = await self._store.read(functools.partial(_log_after, after=after))
            if not page:
                break
            await self._apply(list(dict.fromkeys(cid for _, cid in page)))
            after = page[-1][0]
            self._seq = max(self._seq, after)
        if newest - oldest > 2 * _LOG_KEEP:
            below = self._seq - _LOG_KEEP
            await self._store.write(lambda tx: tx.prune_facts_log(below), bulk=True)

    async def _load(self, newest: int) -> None:
        self._n, self._slots, self._lists = 0, SlotIndex(), {}
        self.attributes.clear()
        self._vocab = {c: {} for c in _STRINGS}
        self._cols = {c: np.zeros(0, dtype=_dtype(c)) for c in SNAPSHOT_COLUMNS[1:]}
        self._alive = np.zeros(0, dtype=np.bool_)
        after = ""
        while True:
            rows = await self._store.read(functools.partial(_chunk, after=after))
            if not rows:
                break
            self._append(rows)
            after = str(rows[-1][0])
        self._trim(self._n // 8)
        # Changes made while loading are replayed by the next catch-up (re-reading is safe).
        self._seq = newest

    def _append(self, rows: list[tuple[Any, ...]]) -> None:
        start = self._n
        self._grow(start + len(rows))
        self._slots.append([str(r[0]) for r in rows])
        self._n = start + len(rows)
        self._write(np.arange(start, self._n), rows)

    def _write(self, slots: npt.NDArray[Any], rows: list[tuple[Any, ...]]) -> None:
        columns = list(zip(*rows, strict=True))
        for name, values in zip(SNAPSHOT_COLUMNS[1:], columns[1:], strict=True):
            if name in _STRINGS:
                vocab = self._vocab[name]
                values = tuple(vocab.setdefault(str(v), len(vocab)) for v in values)
            self._cols[name][slots] = np.asarray(values, dtype=_dtype(name))
        self._alive[slots] = True

    def _grow(self, need: int) -> None:
        cap = len(self._alive)
        if need <= cap:
            return
        # A quarter more each time, not double: at 1,000,000 contacts doubling left 60% of
        # every column unused after the load.
        self._resize(max(need, cap + cap // 4, 1024))

    def _trim(self, headroom: int) -> None:
        if len(self._alive) > self._n + headroom:
            self._resize(self._n + headroom)
            self._slots.trim(headroom)

    def _resize(self, cap: int) -> None:
        for name, arr in self._cols.items():
            self._cols[name] = np.resize(arr, cap)
        self._alive = np.resize(self._alive, cap)
        self._alive[self._n :] = False
        for name, mask in self._lists.items():
            grown = np.zeros(cap, dtype=np.bool_)
            keep = min(len(mask), cap)
            grown[:keep] = mask[:keep]
            self._lists[name] = grown
        self.attributes.grow(cap)

    async def _apply(self, changed: list[str]) -> None:
        for i in range(0, len(changed), _IDS_PER_QUERY):
            ids = changed[i : i + _IDS_PER_QUERY]
            rows = await self._store.read(functools.partial(_facts_of, ids=ids))
            found = {str(r[0]) for r in rows}
            _, gone = self._slots.slots(cid for cid in ids if cid not in found)
            self._alive[gone] = False  # erased: their rows are gone
            held, slots = self._slots.slots(found)
            at = dict(zip(held, slots.tolist(), strict=True))
            fresh = [r for r in rows if str(r[0]) not in at]
            known = [r for r in rows if str(r[0]) in at]
            if fresh:
                self._append(fresh)
            if known:
                self._write(np.array([at[str(r[0])] for r in known], dtype=np.int64), known)
            if self._lists:
                await self._relist(ids)
            if self.attributes.keys:
                await self._reattribute(ids)

    async def _reattribute(self, ids: list[str]) -> None:
        rows = await self._store.read(functools.partial(_attributes_of, ids=ids))
        # A contact created since its columns were read is logged again: it waits for that.
        slots, attrs = self._attributes_at(rows)
        for key in self.attributes.keys:
            # Dropped when too wide: the next count naming it rebuilds it without stale values.
            with contextlib.suppress(TooManyValues):
                self.attributes.fill([key], slots, attrs)

    def _attributes_at(self, rows: list[tuple[str, Any]]) -> tuple[list[int], list[dict[str, Any]]]:
        """The slots and decoded attributes of the rows whose contact is held."""
        cids, slots = self._slots.slots(cid for cid, _ in rows)
        if len(cids) < len(rows):
            held = set(cids)
            rows = [row for row in rows if row[0] in held]
        return slots.tolist(), decode_many([raw for _, raw in rows])

    async def _relist(self, ids: list[str]) -> None:
        pairs = await self._store.read(lambda tx: tx.lists_of(ids))
        _, slots = self._slots.slots(ids)
        for mask in self._lists.values():
            mask[slots] = False
        at = dict(zip(*self._slots.slots(cid for _, cid in pairs), strict=True))
        for name, cid in pairs:
            if name in self._lists and cid in at:
                self._lists[name][int(at[cid])] = True

    async def _load_list(self, name: str) -> None:
        members = await self._store.read(lambda tx: tx.list_member_ids(name))
        mask = np.zeros(len(self._alive), dtype=np.bool_)
        _, slots = self._slots.slots(members)
        mask[slots] = True
        self._lists[name] = mask
