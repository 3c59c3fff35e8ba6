"""Columns for free-form attribute keys in the segment snapshot, built when a rule names one.

`attributes` is a map of strings with keys nobody declares, so the snapshot cannot hold
them all: a key gets a column the first time a counted expression reads it, dictionary
encoded (an int32 code per contact, -1 where the contact lacks the key, and the key's
distinct values), and is kept current from the same change log as the other columns.

Memory is bounded two ways. At most `max_keys` keys are held (the least recently used
goes first) and a key unused for `idle_s` seconds is dropped; at 1,000,000 contacts a key
costs 4 MB of codes plus its values. A key with more than `max_values` distinct values
(an e-mail or an order number stored as an attribute) is not held at all: rules on it
are counted in SQL, as a dictionary would then cost more than it saves.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

MAX_KEYS = 16
IDLE_S = 3_600.0
MAX_VALUES = 50_000


def decode(raw: Any) -> dict[str, Any]:
    """One read-model `attributes` cell: JSON text (SQLite) or an already-decoded dict."""
    if isinstance(raw, dict):
        return raw
    value = json.loads(raw) if raw else {}
    return value if isinstance(value, dict) else {}


def decode_many(raws: list[Any]) -> list[dict[str, Any]]:
    """`decode` of many cells; JSON text is parsed as one array (one call, not one each)."""
    if not all(isinstance(r, str) and r for r in raws):
        return [decode(r) for r in raws]
    values = json.loads("[" + ",".join(raws) + "]")
    return [v if isinstance(v, dict) else {} for v in values]


@dataclass(slots=True)
class _Column:
    codes: npt.NDArray[np.int32]
    vocab: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    used: float = 0.0


class TooManyValues(Exception):
    """A key's distinct values passed the bound while building or updating its column."""


class AttributeColumns:
    """The attribute keys the snapshot holds, one dictionary-encoded column each."""

    def __init__(
        self,
        *,
        max_keys: int = MAX_KEYS,
        idle_s: float = IDLE_S,
        max_values: int = MAX_VALUES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_keys = max_keys
        self._idle_s = idle_s
        self._max_values = max_values
        self._clock = clock
        self._cols: dict[str, _Column] = {}
        self._wide: dict[str, float] = {}  # keys refused for too many values, and when

    @property
    def keys(self) -> set[str]:
        """The keys held now."""
        return set(self._cols)

    def nbytes(self) -> int:
        """Bytes of code arrays held (the vocabularies come on top)."""
        return sum(c.codes.nbytes for c in self._cols.values())

    def clear(self) -> None:
        """Forget every column (the snapshot reloaded and slots moved)."""
        self._cols.clear()

    def clear_key(self, key: str) -> None:
        """Forget one key's column (a build that could not finish)."""
        self._cols.pop(key, None)

    def refused(self, keys: Iterable[str]) -> bool:
        """Whether any of `keys` was found too wide recently (SQL counts those)."""
        now = self._clock()
        return any(now - self._wide.get(k, -self._idle_s - 1) <= self._idle_s for k in keys)

    def make_room(self, needed: set[str]) -> bool:
        """Drop idle keys, then the least recently used, so `needed` fits; False if it cannot."""
        if len(needed) > self.max_keys:
            return False
        now = self._clock()
        for key in [k for k, c in self._cols.items() if now - c.used > self._idle_s]:
            del self._cols[key]
        spare = sorted((c.used, k) for k, c in self._cols.items() if k not in needed)
        while len(self._cols | dict.fromkeys(needed)) > self.max_keys and spare:
            del self._cols[spare.pop(0)[1]]
        return True

    def start(self, keys: Iterable[str], capacity: int) -> None:
        """Empty columns for `keys` (every contact missing them) before `fill`."""
        for key in keys:
            self._cols[key] = _Column(np.full(capacity, -1, dtype=np.int32))

    def grow(self, capacity: int) -> None:
        """Room for `capacity` slots; new slots lack every key."""
        for col in self._cols.values():
            if len(col.codes) < capacity:
                grown = np.full(capacity, -1, dtype=np.int32)
                grown[: len(col.codes)] = col.codes
                col.codes = grown

    def fill(
        self,
        keys: Iterable[str],
        slots: list[int],
        rows: list[dict[str, Any]],
        *,
        building: bool = False,
    ) -> None:
        """Set `keys` of the contacts at `slots` from their decoded attributes.

        Raises:
            TooManyValues: a key passed the distinct-value bound and was dropped; while
                `building` it is also refused for `idle_s` (values replaced since the build
                only make the next build start afresh).
        """
        for key in keys:
            col = self._cols[key]
            index, vocab = col.index, col.vocab
            codes = []
            for attrs in rows:
                value = attrs.get(key)
                if value is None:
                    codes.append(-1)
                    continue
                text = str(value)
                code = index.get(text)
                if code is None:
                    code = index[text] = len(vocab)
                    vocab.append(text)
                codes.append(code)
            col.codes[slots] = codes
            if len(vocab) > self._max_values:
                del self._cols[key]
                if building:
                    self._wide[key] = self._clock()
                raise TooManyValues(key)

    def column(
        self, key: str, size: int
    ) -> tuple[npt.NDArray[np.int32], list[str], dict[str, int]]:
        """One key's codes over the first `size` slots, its vocabulary and value codes."""
        col = self._cols[key]
        col.used = self._clock()
        return col.codes[:size], col.vocab, col.index
