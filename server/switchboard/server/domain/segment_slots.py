"""Which snapshot slot holds which contact, without a Python object per contact.

The snapshot loads contacts by id, and ids are made in time order, so nearly every slot is
in id order: the ids live in one fixed-width bytes array (UTF-8, which sorts as SQL's
binary collation does) and a contact's slot is a binary search. Only contacts appended out
of id order (an id chosen by a client, say) go to a small dict. At 1,000,000 contacts this
is about 28 MB where a list of str and a dict of positions held about 200 MB.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

Slots = npt.NDArray[np.int64]


class SlotIndex:
    """Contact id to slot and back, for `n` slots."""

    def __init__(self) -> None:
        self._ids: npt.NDArray[np.bytes_] = np.zeros(0, dtype="S1")
        self.n = 0
        self.ordered = 0  # slots [0, ordered) hold strictly increasing ids
        self._extra: dict[str, int] = {}  # slots appended out of order

    def __len__(self) -> int:
        return self.n

    def __contains__(self, cid: str) -> bool:
        return self.slot(cid) is not None

    def nbytes(self) -> int:
        """Bytes of the id array (the out-of-order dict comes on top)."""
        return int(self._ids.nbytes)

    def all_ordered(self) -> bool:
        """Whether slot order is id order for every slot."""
        return self.ordered == self.n

    def append(self, cids: list[str]) -> None:
        """New contacts at the next slots, in the given order."""
        encoded = [c.encode() for c in cids]
        width = max((len(b) for b in encoded), default=1)
        need = self.n + len(cids)
        if width > self._ids.dtype.itemsize or need > len(self._ids):
            cap = max(need, len(self._ids) + len(self._ids) // 4, 1024)
            grown = np.zeros(cap, dtype=f"S{max(width, self._ids.dtype.itemsize)}")
            grown[: self.n] = self._ids[: self.n]
            self._ids = grown
        self._ids[self.n : need] = encoded
        last = self._ids[self.ordered - 1] if self.ordered else b""
        for i, (cid, raw) in enumerate(zip(cids, encoded, strict=True)):
            slot = self.n + i
            if self.ordered == slot and (slot == 0 or raw > last):
                self.ordered, last = slot + 1, raw
            else:
                self._extra[cid] = slot
        self.n = need

    def trim(self, headroom: int) -> None:
        """Give back capacity beyond `n + headroom` (after a load)."""
        if len(self._ids) > self.n + headroom:
            self._ids = self._ids[: self.n + headroom].copy()

    def slot(self, cid: str) -> int | None:
        """The slot of `cid`, if held."""
        raw = cid.encode()
        i = int(np.searchsorted(self._ids[: self.ordered], raw))
        if i < self.ordered and self._ids[i] == raw:
            return i
        return self._extra.get(cid)

    def slots(self, cids: Iterable[str]) -> tuple[list[str], Slots]:
        """The held ones of `cids` and their slots (unknown ids are left out)."""
        cids = list(cids)
        if not cids:
            return [], np.zeros(0, dtype=np.int64)
        raw = np.array([c.encode() for c in cids])
        if raw.dtype.itemsize > self._ids.dtype.itemsize:
            # Ids wider than any held cannot be in the array; cut, they must not match.
            fits = np.char.str_len(raw) <= self._ids.dtype.itemsize
            raw = raw.astype(self._ids.dtype)
        else:
            fits = np.ones(len(cids), dtype=np.bool_)
        ordered = self._ids[: self.ordered]
        at = np.searchsorted(ordered, raw)
        hit = (at < self.ordered) & fits
        hit[hit] = ordered[at[hit]] == raw[hit]
        if not self._extra:
            return list(itertools.compress(cids, hit.tolist())), at[hit].astype(np.int64)
        held: list[str] = []
        out: list[int] = []
        for cid, found, i in zip(cids, hit.tolist(), at.tolist(), strict=True):
            slot = i if found else self._extra.get(cid)
            if slot is not None:
                held.append(cid)
                out.append(slot)
        return held, np.array(out, dtype=np.int64)

    def id_at(self, slot: int) -> str:
        """The contact id at `slot`."""
        return bytes(self._ids[slot]).decode()

    def first_after(self, after: str) -> int:
        """The first slot of the ordered prefix whose id is greater than `after`."""
        return int(np.searchsorted(self._ids[: self.ordered], after.encode(), side="right"))
